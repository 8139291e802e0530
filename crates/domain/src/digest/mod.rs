//! What a closed digest carries.
//!
//! A digest of thousands of notifications still goes out as one bus record,
//! so it carries at most [`DIGEST_ITEMS`] items and [`DIGEST_BYTES`] of
//! them; its `count` says how many there were. [`digest_items`] picks them.

/// The most items a digest carries.
pub const DIGEST_ITEMS: usize = 100;

/// The most bytes a digest's items take, as measured by the caller (the
/// router counts each item's params as compact JSON).
pub const DIGEST_BYTES: usize = 256 * 1024;

/// The items a digest carries: all of them when they fit, else the first
/// ones and the last, so a template's `first` and `last` stay true.
///
/// The last item is always kept, even when it alone is over the budget.
/// The others are kept from the front while they fit in what the last one
/// leaves (at most `DIGEST_ITEMS - 1` of them); the first that does not fit
/// ends the run, so what is kept is always a prefix and the last. A first
/// item too big for that budget is therefore not kept either.
pub fn digest_items<T>(all: &[T], size: impl Fn(&T) -> usize) -> Vec<&T> {
    let Some((last, rest)) = all.split_last() else {
        return Vec::new();
    };
    let mut budget = DIGEST_BYTES.saturating_sub(size(last));
    let mut kept: Vec<&T> = Vec::new();
    for item in rest.iter().take(DIGEST_ITEMS - 1) {
        let bytes = size(item);
        if bytes > budget {
            break;
        }
        budget -= bytes;
        kept.push(item);
    }
    kept.push(last);
    kept
}

#[cfg(test)]
mod tests;
