use super::*;

fn config(extra: &str) -> Config {
    Config::from_toml(&format!(
        "{extra}\n[[sources]]\nid = \"s\"\nwrite_key = \"k\"\n"
    ))
    .expect("config")
}

fn with_len(n: u64) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_LENGTH, n.to_string().parse().expect("header"));
    h
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[test]
fn one_address_cannot_take_more_than_its_share_of_requests_and_others_still_get_in() {
    let cfg = config("[server]\nmax_requests_per_ip = 2");
    let a = Arc::new(Admission::new());
    let h = with_len(10);
    let first = a.admit(&cfg, ip("192.0.2.1"), &h, true).expect("first");
    let _second = a.admit(&cfg, ip("192.0.2.1"), &h, true).expect("second");
    assert_eq!(
        a.admit(&cfg, ip("192.0.2.1"), &h, true).err(),
        Some(Refused::PerIp)
    );
    assert!(a.admit(&cfg, ip("192.0.2.2"), &h, true).is_ok());
    drop(first);
    assert!(a.admit(&cfg, ip("192.0.2.1"), &h, true).is_ok());
}

#[test]
fn the_addresses_of_one_ipv6_64_share_one_allowance() {
    let cfg = config("[server]\nmax_requests_per_ip = 2");
    let a = Arc::new(Admission::new());
    let h = HeaderMap::new();
    let _one = a
        .admit(&cfg, ip("2001:db8:1:2::1"), &h, false)
        .expect("one");
    let _two = a
        .admit(&cfg, ip("2001:db8:1:2::2"), &h, false)
        .expect("two");
    assert_eq!(
        a.admit(&cfg, ip("2001:db8:1:2:ffff::3"), &h, false).err(),
        Some(Refused::PerIp)
    );
    assert!(a.admit(&cfg, ip("2001:db8:1:3::1"), &h, false).is_ok());
}

#[test]
fn an_address_holds_at_most_its_share_of_the_body_budget() {
    let cfg = config(
        "[server]\nmax_buffered_body_bytes = 4194304\nmax_buffered_body_bytes_per_ip = 1048576\n\
         [limits]\nmax_request_bytes = 524288\nmax_request_output_bytes = 1048576",
    );
    let a = Arc::new(Admission::new());
    let greedy = ip("192.0.2.1");
    let _one = a
        .admit(&cfg, greedy, &with_len(512 * 1024), true)
        .expect("one");
    let _two = a
        .admit(&cfg, greedy, &with_len(512 * 1024), true)
        .expect("two");
    assert_eq!(
        a.admit(&cfg, greedy, &with_len(1), true).err(),
        Some(Refused::PerIpBytes)
    );
    // Another address is served from what is left.
    let other = a.admit(&cfg, ip("192.0.2.2"), &with_len(512 * 1024), true);
    assert!(other.is_ok());
    assert_eq!(a.held_bytes(), 3 * 512 * 1024);
}

#[test]
fn the_global_budget_bounds_all_addresses_together() {
    let cfg = config(
        "[server]\nmax_buffered_body_bytes = 1048576\nmax_buffered_body_bytes_per_ip = 1048576\n\
         [limits]\nmax_request_bytes = 524288\nmax_request_output_bytes = 1048576",
    );
    let a = Arc::new(Admission::new());
    let one = a.admit(&cfg, ip("192.0.2.1"), &with_len(512 * 1024), true);
    let two = a.admit(&cfg, ip("192.0.2.2"), &with_len(512 * 1024), true);
    assert!(one.is_ok() && two.is_ok());
    assert_eq!(
        a.admit(&cfg, ip("192.0.2.3"), &with_len(1), true).err(),
        Some(Refused::BodyBudget)
    );
    assert!(
        a.admit(&cfg, ip("192.0.2.3"), &HeaderMap::new(), false)
            .is_ok(),
        "GET holds nothing"
    );
    drop((one, two));
    assert_eq!((a.held_bytes(), a.tracked_ips()), (0, 0));
}

#[test]
fn an_unknown_length_holds_nothing_up_front_and_is_charged_as_it_grows() {
    let cfg = config(
        "[server]\nmax_buffered_body_bytes = 2097152\nmax_buffered_body_bytes_per_ip = 1048576\n\
         [limits]\nmax_request_bytes = 524288\nmax_request_output_bytes = 1048576",
    );
    let a = Arc::new(Admission::new());
    let chunked = a
        .admit(&cfg, ip("192.0.2.1"), &HeaderMap::new(), true)
        .expect("admitted");
    assert_eq!(chunked.charged(), 0);
    chunked.charge_to(1000).expect("1000");
    chunked.charge_to(500).expect("already held");
    assert_eq!(chunked.charged(), 1000);
    // The records a batch will write count too, up to the address's share.
    chunked.charge_to(1024 * 1024).expect("the whole share");
    assert_eq!(
        chunked.charge_to(1024 * 1024 + 1).err(),
        Some(Refused::PerIpBytes)
    );
    assert_eq!(chunked.charged(), 1024 * 1024);
    drop(chunked);
    assert_eq!((a.held_bytes(), a.tracked_ips()), (0, 0));
}

#[test]
fn the_caps_follow_the_configuration_of_each_call() {
    let small = config("[limits]\nmax_request_bytes = 65536");
    let large = config("[limits]\nmax_request_bytes = 1048576");
    let a = Arc::new(Admission::new());
    let h = with_len(1024 * 1024);
    let before = a.admit(&small, ip("192.0.2.1"), &h, true).expect("small");
    assert_eq!(before.charged(), 64 * 1024, "over the limit: 413 later");
    let after = a.admit(&large, ip("192.0.2.1"), &h, true).expect("large");
    assert_eq!(after.charged(), 1024 * 1024);
}

#[tokio::test]
async fn the_current_request_is_charged_and_released_when_its_handler_ends() {
    let cfg = config("");
    let a = Arc::new(Admission::new());
    assert!(charge_to(1 << 40).is_ok(), "outside a request: no charge");
    let admitted = a
        .admit(&cfg, ip("192.0.2.1"), &HeaderMap::new(), true)
        .expect("admitted");
    let held = serve_as(admitted, async {
        charge_to(4096).expect("charged");
        let refused = charge_to(u64::MAX).err();
        (a.held_bytes(), refused)
    })
    .await;
    assert_eq!(held, (4096, Some(Refused::PerIpBytes)));
    assert_eq!((a.held_bytes(), a.tracked_ips()), (0, 0));
}

#[test]
fn a_peer_holds_at_most_its_share_of_connections_waiting_for_a_request() {
    let cfg =
        config("[server]\nmax_pending_connections_per_ip = 2\ntrusted_proxies = [\"10.0.0.0/8\"]");
    let a = Arc::new(Admission::new());
    let peer = ip("192.0.2.1");
    let one = a.open_connection(&cfg, peer).expect("one");
    let two = a.open_connection(&cfg, peer).expect("two");
    assert_eq!(
        a.open_connection(&cfg, peer).err(),
        Some(Refused::PerIpConnections)
    );
    assert!(a.open_connection(&cfg, ip("192.0.2.2")).is_ok());
    // A connection with a request under way no longer waits.
    let busy = one.busy();
    let three = a.open_connection(&cfg, peer).expect("three");
    assert_eq!(
        a.open_connection(&cfg, peer).err(),
        Some(Refused::PerIpConnections)
    );
    // Back to waiting after its response; closing gives the place back.
    drop(busy);
    drop((one, two));
    assert!(a.open_connection(&cfg, peer).is_ok());
    // A trusted proxy carries many clients: no cap by peer.
    let proxied: Vec<_> = (0..5)
        .map(|_| a.open_connection(&cfg, ip("10.1.2.3")).expect("proxy"))
        .collect();
    drop((proxied, three));
    assert_eq!(a.tracked_ips(), 0);
}
