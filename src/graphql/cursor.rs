//! Opaque page cursors. A cursor names the list that gave it (for a report's rows, the
//! report and the order too) beside its key, so that a cursor of another list, of another
//! order, or made up, is refused with `BAD_USER_INPUT` instead of quietly starting a page
//! anywhere.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::service::Error;

/// The cursor of the item with `key` in the list `list`.
pub(crate) fn encode(list: &str, key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{list}\n{key}"))
}

/// The key of `cursor`, if the list `list` gave it.
pub(crate) fn decode(cursor: &str, list: &str) -> Result<String, Error> {
    let bad = || Error::BadInput(format!("{cursor:?} is not a cursor of this list (in this order)"));
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (named, key) = text.split_once('\n').ok_or_else(bad)?;
    if named != list {
        return Err(bad());
    }
    Ok(key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_is_read_back_by_its_own_list_only() {
        let cursor = encode("rows:r1:STORE_ID", "store\nwith:odd|bytes");
        assert_eq!(
            decode(&cursor, "rows:r1:STORE_ID").unwrap(),
            "store\nwith:odd|bytes"
        );
        assert!(decode(&cursor, "rows:r2:STORE_ID").is_err());
        assert!(decode(&cursor, "rows:r1:UPTIME_LAST_HOUR").is_err());
        assert!(decode("zzz", "rows:r1:STORE_ID").is_err());
        assert!(decode("", "reports").is_err());
    }
}
