//! The privacy scrubber must handle any JSON object without panicking, and
//! leave an object whose record (written as the gateway writes it, copying
//! the input's strings) is valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trackgate::privacy::scrub::*;

thread_local! {
    // Built once: compiling the scrubber's patterns per input would hide
    // the scrubbing itself in the profile.
    static SCRUBBER: Scrubber =
        Scrubber::new(&ScrubConfig::default()).expect("the default scrub config is valid");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(trackgate::json::Value::Object(mut event)) = trackgate::json::from_str(text) else {
        return;
    };
    let mut redactions = Vec::new();
    SCRUBBER.with(|s| {
        let _ = s.scrub_event(&mut event, &mut redactions);
    });
    let mut record = Vec::new();
    trackgate::json::write_map(&event, text, &mut record);
    assert!(serde_json::from_slice::<serde_json::Value>(&record).is_ok());
});
