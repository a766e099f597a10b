//! Where accepted events go: Kafka.

pub mod kafka;
