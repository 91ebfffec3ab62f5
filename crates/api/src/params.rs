//! Query parameters and path ids: read by hand rather than through a derived extractor, so that
//! every refusal is a 400 whose message names the parameter and what it must be.

use std::collections::HashMap;

use marquee_schemas::validate_id;

use crate::error::ApiError;

/// Most items a recommendation, similar or trending list may hold.
pub const MAX_COUNT: usize = 100;

/// Most item ids the `exclude` parameter may list.
pub const MAX_EXCLUDED: usize = 1000;

/// The query parameters of a request.
pub type Params = HashMap<String, String>;

/// The `count` parameter: 1 to [`MAX_COUNT`], 10 when absent.
pub fn parse_count(params: &Params) -> Result<usize, ApiError> {
    let count = parse_number(params, "count", (1, MAX_COUNT as i64))?;
    Ok(count.unwrap_or(10) as usize)
}

/// A whole-number parameter from `min` to `max`; `None` when absent.
pub fn parse_number(
    params: &Params,
    name: &str,
    (min, max): (i64, i64),
) -> Result<Option<i64>, ApiError> {
    match params.get(name) {
        None => Ok(None),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|value| (min..=max).contains(value))
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_parameter",
                    format!("{name}: must be a whole number from {min} to {max}, got {text:?}"),
                )
            }),
    }
}

/// A boolean parameter, `default` when absent.
pub fn parse_bool(params: &Params, name: &str, default: bool) -> Result<bool, ApiError> {
    match params.get(name).map(String::as_str) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(ApiError::bad_request(
            "invalid_parameter",
            format!("{name}: must be true or false, got {other:?}"),
        )),
    }
}

/// A text parameter, trimmed; `None` when absent or empty.
pub fn parse_text(params: &Params, name: &str) -> Option<String> {
    params
        .get(name)
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
}

/// The `exclude` parameter: comma-separated item ids, at most [`MAX_EXCLUDED`].
pub fn parse_exclude(params: &Params) -> Result<Vec<String>, ApiError> {
    let exclude: Vec<String> = params
        .get("exclude")
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if exclude.len() > MAX_EXCLUDED {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("exclude: at most {MAX_EXCLUDED} item ids"),
        ));
    }
    Ok(exclude)
}

/// Refuses a parameter the route does not take, naming the ones it does.
pub fn reject_unknown_params(params: &Params, known: &[&str]) -> Result<(), ApiError> {
    match params.keys().find(|key| !known.contains(&key.as_str())) {
        Some(unknown) => Err(ApiError::bad_request(
            "invalid_parameter",
            format!(
                "{unknown}: unknown query parameter, expected one of {}",
                known.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

/// Checks a user or item id taken from the path.
pub fn check_path_id(field: &str, id: &str) -> Result<(), ApiError> {
    validate_id(field, id)
        .map_err(|error| ApiError::bad_request("invalid_parameter", error.to_string()))
}

/// Query parameters from pairs, for tests.
#[cfg(test)]
pub(crate) fn params(pairs: &[(&str, &str)]) -> Params {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_names_the_parameter() {
        assert_eq!(parse_count(&params(&[])).unwrap(), 10);
        assert_eq!(parse_count(&params(&[("count", "100")])).unwrap(), 100);
        for bad in ["0", "101", "ten", "-1"] {
            let error = parse_count(&params(&[("count", bad)])).unwrap_err();
            assert!(error.to_string().starts_with("count: "), "{error}");
        }
        let error = parse_bool(&params(&[("exclude_seen", "yes")]), "exclude_seen", true);
        assert!(error.unwrap_err().to_string().starts_with("exclude_seen: "));
        let error = reject_unknown_params(&params(&[("cout", "5")]), &["count", "genre"]);
        assert_eq!(
            error.unwrap_err().to_string(),
            "cout: unknown query parameter, expected one of count, genre"
        );
        let many = vec!["m"; MAX_EXCLUDED + 1].join(",");
        let error = parse_exclude(&params(&[("exclude", &many)])).unwrap_err();
        assert!(error.to_string().starts_with("exclude: at most"), "{error}");
        assert_eq!(
            parse_exclude(&params(&[("exclude", " m1, ,m2 ")])).unwrap(),
            ["m1", "m2"]
        );
    }
}
