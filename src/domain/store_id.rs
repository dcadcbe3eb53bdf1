//! What a store id may be. Ids are opaque text (19-digit integers and UUIDs both occur),
//! but every table keys on them, and PostgreSQL's btree refuses an index entry over about
//! 2.7 KB: one longer id in a batch failed the whole batch, and in the status file every
//! reload. So an id has a documented maximum, far above any real one, and a longer one is a
//! rejected row like any other bad value.

/// The longest store id, in bytes of UTF-8.
pub const MAX_STORE_ID_BYTES: usize = 255;

/// Why `id` cannot be a store id, if it cannot.
pub fn check(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("empty store_id".into());
    }
    // PostgreSQL text cannot hold one: such an id could never be stored or reported.
    if id.contains('\0') {
        return Err(format!("store_id {} contains a NUL character", quoted(id)));
    }
    if id.len() > MAX_STORE_ID_BYTES {
        return Err(format!(
            "store_id {} is {} bytes long; a store id has at most {MAX_STORE_ID_BYTES}",
            quoted(id),
            id.len()
        ));
    }
    Ok(())
}

/// The most characters of a client's value a message repeats.
const SHOWN: usize = 40;

/// `value` in quotes for a message, cut to its first [`SHOWN`] characters: a reason must
/// not grow with the value it refuses.
pub fn quoted(value: &str) -> String {
    match value.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{:?}…", &value[..cut]),
        None => format!("{value:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_has_1_to_255_bytes_and_no_nul() {
        assert!(check("8419537941919820732").is_ok());
        assert!(check(&"é".repeat(127)).is_ok());
        assert!(check(&"x".repeat(MAX_STORE_ID_BYTES)).is_ok());
        let long = check(&"x".repeat(6_000)).unwrap_err();
        assert!(
            long.contains("6000 bytes") && long.contains("at most 255"),
            "{long}"
        );
        assert!(long.len() < 120, "the reason does not repeat the id: {long}");
        assert!(check("").is_err());
        assert!(check("a\0b").is_err());
    }
}
