//! The portal website's query strings: `govdc_hub::portal::web::query` (`SearchState::parse`,
//! `parameters`, `with_lang`).
//!
//! Input: the query string of `/datasets?...` (any bytes; a browser sends what the address bar
//! holds).
//!
//! Checks:
//! - a search query the website accepts re-renders (`SearchState::url`) to a URL that reads
//!   back as the same state, and that URL renders again to itself;
//! - what it accepted is within its limits (page 1 to 10,000, `q` at most 200 characters,
//!   filters at most 253, values trimmed and not empty);
//! - a refusal names a parameter of the query (or one it does not know);
//! - the language switch's link keeps every other parameter, in order, and sets `lang` first.
#![no_main]

use govdc_hub::portal::web::i18n::Lang;
use govdc_hub::portal::web::query::{
    MAX_PAGE, MAX_TEXT_CHARS, MAX_VALUE_CHARS, SEARCH, SearchState, parameters, with_lang,
};
use libfuzzer_sys::fuzz_target;

fn pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    match SearchState::parse(Some(query)) {
        Ok(state) => {
            assert!((1..=MAX_PAGE).contains(&state.page), "{state:?}");
            assert!(state.text.chars().count() <= MAX_TEXT_CHARS);
            assert_eq!(state.text, state.text.trim());
            for value in state.filters.values() {
                assert!(!value.is_empty() && value.trim() == value);
                assert!(value.chars().count() <= MAX_VALUE_CHARS);
            }
            let url = state.url();
            let again = SearchState::parse(url.split_once('?').map(|(_, q)| q));
            assert_eq!(
                again.as_ref(),
                Ok(&state),
                "{query:?} was read as {state:?}, rendered as {url:?}, which reads differently"
            );
            assert_eq!(again.map(|s| s.url()).as_deref(), Ok(url.as_str()));
        }
        Err(bad) => {
            let given = pairs(query);
            assert!(
                given.iter().any(|(name, _)| name == bad.name()),
                "{query:?} was refused naming {:?}, which it does not have",
                bad.name()
            );
            assert!(!bad.to_string().is_empty());
        }
    }
    if let Ok(params) = parameters(Some(query), SEARCH) {
        for (name, value) in &params {
            assert!(SEARCH.contains(&name.as_str()));
            assert!(!value.is_empty() && value.trim() == value);
        }
    }
    for lang in [Lang::Zh, Lang::En] {
        let link = with_lang("/datasets", Some(query), lang);
        let Some(("/datasets", rest)) = link.split_once('?') else {
            panic!("the switch's link {link:?} lost its path");
        };
        let mut read = pairs(rest).into_iter();
        assert_eq!(
            read.next(),
            Some(("lang".to_owned(), lang.tag().to_owned()))
        );
        let others: Vec<(String, String)> = pairs(query)
            .into_iter()
            .filter(|(n, _)| n != "lang")
            .collect();
        assert_eq!(read.collect::<Vec<_>>(), others, "{query:?} -> {link:?}");
    }
});
