//! The boundaries of a digest's items: counts around [`DIGEST_ITEMS`] and
//! sizes around [`DIGEST_BYTES`].

use serde_json::{Map, Value};

use super::*;

const KIB: usize = 1024;

/// Items numbered 0.. with the given sizes; the size function reads them back.
fn sized(sizes: &[usize]) -> Vec<(usize, usize)> {
    sizes.iter().copied().enumerate().collect()
}

fn kept(sizes: &[usize]) -> Vec<usize> {
    digest_items(&sized(sizes), |&(_, size)| size)
        .into_iter()
        .map(|&(i, _)| i)
        .collect()
}

fn range(from: usize, to: usize) -> Vec<usize> {
    (from..to).collect()
}

#[test]
fn a_digest_keeps_every_item_that_fits_else_a_prefix_and_the_last() {
    let small = 10;
    // (case, item sizes, the indices kept)
    let table: Vec<(&str, Vec<usize>, Vec<usize>)> = vec![
        ("no items", vec![], vec![]),
        ("one item", vec![small], vec![0]),
        ("one item over the budget", vec![DIGEST_BYTES + 1], vec![0]),
        ("two items", vec![small, small], vec![0, 1]),
        (
            "exactly DIGEST_ITEMS",
            vec![small; DIGEST_ITEMS],
            range(0, DIGEST_ITEMS),
        ),
        (
            "one more than DIGEST_ITEMS",
            vec![small; DIGEST_ITEMS + 1],
            {
                let mut v = range(0, DIGEST_ITEMS - 1);
                v.push(DIGEST_ITEMS);
                v
            },
        ),
        ("a thousand", vec![small; 1000], {
            let mut v = range(0, DIGEST_ITEMS - 1);
            v.push(999);
            v
        }),
        (
            "the budget exactly hit",
            vec![64 * KIB, 64 * KIB, 64 * KIB, 64 * KIB],
            vec![0, 1, 2, 3],
        ),
        (
            "one byte over the budget",
            vec![64 * KIB, 64 * KIB, 64 * KIB + 1, 64 * KIB],
            vec![0, 1, 3],
        ),
        (
            "the last item alone fills the budget",
            vec![small, small, DIGEST_BYTES],
            vec![2],
        ),
        (
            "a single huge last item",
            vec![small, small, small, DIGEST_BYTES * 4],
            vec![3],
        ),
        (
            "a huge middle item ends the run, small ones after it too",
            vec![small, small, DIGEST_BYTES, small, small, small],
            vec![0, 1, 5],
        ),
        (
            "a huge first item is not kept",
            vec![DIGEST_BYTES, small, small],
            vec![2],
        ),
        (
            "two of 100 KiB fit, a third does not",
            vec![100 * KIB; 10],
            vec![0, 9],
        ),
        (
            "empty items cost nothing but still count",
            vec![0; DIGEST_ITEMS + 5],
            {
                let mut v = range(0, DIGEST_ITEMS - 1);
                v.push(DIGEST_ITEMS + 4);
                v
            },
        ),
    ];
    for (case, sizes, expected) in table {
        assert_eq!(kept(&sizes), expected, "{case}");
    }
}

#[test]
fn a_digest_of_params_measured_as_json_keeps_the_first_and_the_last() {
    let item = |i: usize, padding: usize| -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("i".into(), Value::from(i));
        m.insert("pad".into(), Value::from("x".repeat(padding)));
        m
    };
    let json = |p: &Map<String, Value>| serde_json::to_string(p).map_or(0, |s| s.len());
    let ids = |kept: Vec<&Map<String, Value>>| -> Vec<u64> {
        kept.iter().map(|m| m["i"].as_u64().unwrap()).collect()
    };
    let many: Vec<Map<String, Value>> = (0..1000).map(|i| item(i, 10)).collect();
    let kept = ids(digest_items(&many, json));
    assert_eq!(kept.len(), DIGEST_ITEMS);
    assert_eq!((kept[0], kept[98], kept[99]), (0, 98, 999));
    let big: Vec<Map<String, Value>> = (0..10).map(|i| item(i, 100_000)).collect();
    assert_eq!(ids(digest_items(&big, json)), vec![0, 9]);
}
