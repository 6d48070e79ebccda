//! Bounded replies (PROTOCOL.md §7): no reply frame exceeds [`MAX_REPLY_BYTES`]. Lists
//! come a page at a time (`limit`, with `more` when there is more), and a page that
//! would be too large in bytes carries fewer items, also with `more`.

use crate::protocol::{ApiError, ErrorCode};
use serde::Serialize;

/// The largest reply frame, in bytes. A socket's write buffer holds four of them.
pub const MAX_REPLY_BYTES: usize = 256 * 1024;

/// Bytes kept back for the rest of a reply around its list (the frame's type and id,
/// a room, up to 200 online users).
const ENVELOPE_BYTES: usize = 48 * 1024;

/// A page's `limit`: 1 to `max`, `default` when absent.
pub fn page_limit(limit: Option<i64>, default: u32, max: u32) -> Result<u32, ApiError> {
    match limit {
        None => Ok(default),
        Some(limit) if (1..=i64::from(max)).contains(&limit) => Ok(limit as u32),
        Some(_) => Err(ApiError::new(ErrorCode::Invalid, format!("“limit” is 1 to {max}."))),
    }
}

/// Which end of a list a page keeps when it must shed items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The first items (paging forwards: catching up, lists by name or id).
    First,
    /// The last items (paging backwards: the latest messages).
    Last,
}

/// Trims `items` (fetched with one more than `limit` to learn whether there is more) to
/// `limit`, then to what fits in a reply; whether more items lie beyond the page.
pub fn fit_page<T: Serialize>(items: &mut Vec<T>, limit: u32, keep: Keep) -> bool {
    let mut more = items.len() > limit as usize;
    if more {
        let extra = items.len() - limit as usize;
        match keep {
            Keep::First => items.truncate(limit as usize),
            Keep::Last => drop(items.drain(..extra)),
        }
    }
    let mut used = 0;
    let mut fits = 0;
    let sizes: Vec<usize> =
        items.iter().map(|item| serde_json::to_vec(item).map_or(usize::MAX, |v| v.len() + 1)).collect();
    let order: Box<dyn Iterator<Item = &usize>> = match keep {
        Keep::First => Box::new(sizes.iter()),
        Keep::Last => Box::new(sizes.iter().rev()),
    };
    for size in order {
        if used + size > MAX_REPLY_BYTES - ENVELOPE_BYTES {
            break;
        }
        used += size;
        fits += 1;
    }
    if fits < items.len() {
        more = true;
        match keep {
            Keep::First => items.truncate(fits),
            Keep::Last => drop(items.drain(..items.len() - fits)),
        }
    }
    more
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_cut_to_its_limit_and_says_there_is_more() {
        let mut items: Vec<u32> = (1..=6).collect();
        assert!(fit_page(&mut items, 5, Keep::First));
        assert_eq!(items, [1, 2, 3, 4, 5]);
        let mut items: Vec<u32> = (1..=6).collect();
        assert!(fit_page(&mut items, 5, Keep::Last));
        assert_eq!(items, [2, 3, 4, 5, 6], "the latest are kept");
        let mut items: Vec<u32> = (1..=5).collect();
        assert!(!fit_page(&mut items, 5, Keep::First), "exactly the limit: nothing more");
    }

    #[test]
    fn a_page_too_large_in_bytes_carries_fewer_items() {
        let big = "é".repeat(20_000); // 40 KB of JSON each
        let mut items: Vec<String> = (0..20).map(|n| format!("{n}{big}")).collect();
        assert!(fit_page(&mut items, 50, Keep::Last));
        assert!(items.len() >= 4 && items.len() < 10, "{}", items.len());
        assert!(items.last().unwrap().starts_with("19"), "the newest survive");
        assert!(serde_json::to_vec(&items).unwrap().len() <= MAX_REPLY_BYTES - ENVELOPE_BYTES);
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(page_limit(None, 50, 200).unwrap(), 50);
        assert_eq!(page_limit(Some(200), 50, 200).unwrap(), 200);
        assert!(page_limit(Some(0), 50, 200).is_err());
        assert!(page_limit(Some(201), 50, 200).is_err());
    }
}
