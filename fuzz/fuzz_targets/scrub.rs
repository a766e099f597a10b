//! The privacy scrubber must handle any JSON object without panicking, and
//! leave an object that still serializes.
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
    let Ok(serde_json::Value::Object(mut event)) = serde_json::from_slice(data) else {
        return;
    };
    let mut redactions = Vec::new();
    SCRUBBER.with(|s| {
        let _ = s.scrub_event(&mut event, &mut redactions);
    });
    assert!(serde_json::to_vec(&event).is_ok());
});
