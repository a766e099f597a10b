//! `context.campaign` from the page URL's `utm_*` parameters and click ids,
//! when the client did not send one (analytics.js does; most mobile and
//! server libraries do not).
//!
//! Names follow Segment's `context.campaign`: `utm_campaign` → `name`,
//! `utm_source` → `source`, `utm_medium` → `medium`, `utm_term` → `term`,
//! `utm_content` → `content`, any other `utm_x` → `x`; click ids (the
//! `click_ids` list: `gclid`, `fbclid`, `msclkid`, …) keep their name.
//! The URL read is the one privacy left: a parameter the scrubber removed
//! or masked is never brought back.

use crate::json::{Map, Value};

/// The campaign of `url`, or `None` when it carries no campaign parameter.
pub fn from_url(url: &str, click_ids: &[String]) -> Option<Map<'static>> {
    let url = url.split_once('#').map_or(url, |(u, _)| u);
    let query = url.split_once('?')?.1;
    // Cheap check first: most page URLs carry no campaign at all.
    if !query.contains("utm_") && !click_ids.iter().any(|c| query.contains(c.as_str())) {
        return None;
    }
    let mut out = Map::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if value.is_empty() {
            continue;
        }
        let name = match key.strip_prefix("utm_") {
            Some("campaign") => "name",
            Some(rest) if !rest.is_empty() => rest,
            _ if click_ids.iter().any(|c| *c == key) => key.as_ref(),
            _ => continue,
        };
        if !out.contains_key(name) {
            out.insert(name.to_string(), Value::String(value.into_owned().into()));
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use crate::json::json;

    use super::*;

    #[test]
    fn utm_parameters_and_click_ids_become_the_campaign() {
        let ids: Vec<String> = ["gclid", "fbclid", "msclkid"].map(String::from).to_vec();
        let cases = [
            ("https://shop.example/", None),
            ("https://shop.example/?page=2", None),
            (
                "https://shop.example/p?utm_source=news&utm_medium=email&utm_campaign=spring%20sale&utm_term=shoes&utm_content=hero#top",
                Some(json!({"source":"news","medium":"email","name":"spring sale","term":"shoes","content":"hero"})),
            ),
            (
                "https://shop.example/?gclid=abc&x=1&utm_id=42&utm_source_platform=sa360",
                Some(json!({"gclid":"abc","id":"42","source_platform":"sa360"})),
            ),
            ("https://shop.example/?fbclid=f1&utm_source=", Some(json!({"fbclid":"f1"}))),
            ("https://shop.example/?utm_=x&gclidx=1", None),
            ("https://shop.example/#?utm_source=fragment", None),
        ];
        for (url, want) in cases {
            let got = from_url(url, &ids).map(Value::Object);
            assert_eq!(got, want, "{url}");
        }
    }
}
