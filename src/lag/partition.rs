//! The lag of one partition, the one place it is computed: the high-watermark lag (log end − committed, what
//! `kafka-consumer-groups` shows) and, on transactional topics, the consumable lag (what a consumer will read).

/// Messages between the committed offset and the log end (or the last stable offset, when that is the end
/// asked for). A committed offset past the end (a truncated or recreated topic) leaves nothing to read: 0.
pub fn high_watermark_lag(committed: i64, log_end: i64) -> i64 {
    log_end.saturating_sub(committed).max(0)
}

/// What a record batch is, read from its header (and, for a control batch, the type in its one record's key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchKind {
    /// Data records.
    Data,
    /// A transaction marker: COMMIT (`abort: false`) or ABORT (`abort: true`). No consumer ever receives it.
    Marker { abort: bool },
}

/// One record batch of a partition, as its header describes it: no record is decoded to count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub last_offset_delta: i32,
    /// Records in the batch: fewer than `last_offset_delta + 1` when compaction removed some.
    pub record_count: i32,
    pub producer_id: i64,
    pub transactional: bool,
    pub kind: BatchKind,
}

impl BatchHeader {
    pub fn last_offset(&self) -> i64 {
        self.base_offset.saturating_add(i64::from(self.last_offset_delta))
    }
}

/// A partition's aborted transaction, as a READ_COMMITTED Fetch lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
}

/// What a `read_committed` consumer will still receive of one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsumableLag {
    /// Data records in `[committed, end)`, markers and aborted transactions left out.
    pub records: i64,
    /// The offset of the first of them: where time lag is measured. None when there is nothing to read.
    pub first_offset: Option<i64>,
    /// False when the batch headers stopped short of `end` (a read capped by its budget): `records` then counts
    /// every offset after the last header as a record, an upper bound.
    pub exact: bool,
}

/// The data records a `read_committed` consumer at `committed` will still receive before `end` (the last stable
/// offset), from the headers of the batches that cover `[committed, end)` in log order and the aborted
/// transactions a READ_COMMITTED Fetch listed for that range. Kafka's consumer rule (`CompletedFetch`): an
/// aborted-transaction entry of producer P opens when a batch reaching its first offset is met, every
/// transactional batch of P is then skipped until P's ABORT marker closes it; markers are never delivered.
/// A batch straddling `committed` (a consumer that committed mid-batch) counts the offsets from `committed` on,
/// at most its record count.
pub fn consumable_lag(committed: i64, end: i64, batches: &[BatchHeader], aborted: &[AbortedTxn]) -> ConsumableLag {
    let mut pending: Vec<AbortedTxn> = aborted.to_vec();
    // Descending by first offset: the next entry to open is at the end.
    pending.sort_by_key(|t| std::cmp::Reverse(t.first_offset));
    let mut open: Vec<i64> = Vec::new();
    let mut records = 0i64;
    let mut first_offset = None;
    let mut covered_to = committed;
    for batch in batches {
        let last = batch.last_offset();
        if batch.base_offset >= end {
            break;
        }
        while pending.last().is_some_and(|t| t.first_offset <= last) {
            if let Some(t) = pending.pop() {
                open.push(t.producer_id);
            }
        }
        covered_to = covered_to.max(last.saturating_add(1));
        match batch.kind {
            // Before `committed` too: an ABORT there closes a transaction the range no longer holds.
            BatchKind::Marker { abort } => {
                if abort {
                    open.retain(|p| *p != batch.producer_id);
                }
            }
            BatchKind::Data if last < committed => {}
            BatchKind::Data if batch.transactional && open.contains(&batch.producer_id) => {}
            BatchKind::Data => {
                let from = batch.base_offset.max(committed);
                let to = last.min(end.saturating_sub(1));
                let offsets = to.saturating_sub(from).saturating_add(1);
                let n = offsets.min(i64::from(batch.record_count)).max(0);
                if n > 0 {
                    records += n;
                    first_offset.get_or_insert(from);
                }
            }
        }
    }
    let exact = covered_to >= end;
    if !exact {
        records += end - covered_to.max(committed);
        first_offset.get_or_insert(covered_to.max(committed));
    }
    ConsumableLag {
        records,
        first_offset,
        exact,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(base: i64, count: i32, pid: i64, transactional: bool) -> BatchHeader {
        BatchHeader {
            base_offset: base,
            last_offset_delta: count - 1,
            record_count: count,
            producer_id: pid,
            transactional,
            kind: BatchKind::Data,
        }
    }

    fn marker(offset: i64, pid: i64, abort: bool) -> BatchHeader {
        BatchHeader {
            base_offset: offset,
            last_offset_delta: 0,
            record_count: 1,
            producer_id: pid,
            transactional: true,
            kind: BatchKind::Marker { abort },
        }
    }

    fn lag(records: i64, first_offset: Option<i64>) -> ConsumableLag {
        ConsumableLag {
            records,
            first_offset,
            exact: true,
        }
    }

    #[test]
    fn consumable_lag_leaves_out_markers_and_aborted_transactions() {
        let aborted_7 = [AbortedTxn {
            producer_id: 7,
            first_offset: 4,
        }];
        let compacted = BatchHeader {
            record_count: 2,
            ..data(0, 5, -1, false)
        };
        // (what, committed, end, batches, aborted, consumable lag)
        type Case<'a> = (&'a str, i64, i64, Vec<BatchHeader>, &'a [AbortedTxn], ConsumableLag);
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("nothing to read", 10, 10, vec![], &[], lag(0, None)),
            ("plain records", 0, 5, vec![data(0, 5, -1, false)], &[], lag(5, Some(0))),
            ("committed mid-batch", 2, 5, vec![data(0, 5, -1, false)], &[], lag(3, Some(2))),
            ("caught up behind a commit marker", 3, 4, vec![marker(3, 7, false)], &[], lag(0, None)),
            ("a committed transaction", 0, 4, vec![data(0, 3, 7, true), marker(3, 7, false)], &[], lag(3, Some(0))),
            ("only markers", 3, 8,
                vec![marker(3, 7, false), marker(4, 8, false), marker(5, 7, false), marker(6, 8, true), marker(7, 7, false)],
                &[], lag(0, None)),
            ("an aborted transaction", 3, 8,
                vec![marker(3, 7, false), data(4, 3, 7, true), marker(7, 7, true)], &aborted_7, lag(0, None)),
            ("data after an aborted transaction", 3, 10,
                vec![marker(3, 7, false), data(4, 3, 7, true), marker(7, 7, true), data(8, 2, 7, true)], &aborted_7,
                lag(2, Some(8))),
            ("another producer's records inside an aborted transaction", 4, 9,
                vec![data(4, 2, 7, true), data(6, 2, 8, true), marker(8, 7, true)], &aborted_7, lag(2, Some(6))),
            ("a plain batch of an aborted producer id is not skipped", 4, 6,
                vec![data(4, 2, 7, false)], &aborted_7, lag(2, Some(4))),
            ("an entry for an earlier transaction opens and is closed at the committed offset", 6, 10,
                vec![data(4, 2, 7, true), marker(6, 7, true), data(7, 3, 7, true)], &aborted_7, lag(3, Some(7))),
            ("an entry opened and closed before the committed offset", 7, 10,
                vec![data(4, 2, 7, true), marker(6, 7, true), data(7, 3, 7, true)], &aborted_7, lag(3, Some(7))),
            ("nothing past the last stable offset", 0, 3, vec![data(0, 3, 7, true), data(3, 4, 8, true)], &[], lag(3, Some(0))),
            ("a compacted batch counts its records", 0, 5, vec![compacted], &[], lag(2, Some(0))),
            ("committed past the end", 12, 10, vec![], &[], lag(0, None)),
        ];
        for (name, committed, end, batches, aborted, want) in cases {
            assert_eq!(consumable_lag(committed, end, &batches, aborted), want, "{name}");
        }
    }

    #[test]
    fn consumable_lag_is_an_upper_bound_when_the_headers_stop_short_of_the_end() {
        // Headers read up to offset 4 of [0, 20): 3 data records and a marker known, 16 offsets unknown.
        let batches = [data(0, 3, 7, true), marker(3, 7, false)];
        let got = consumable_lag(0, 20, &batches, &[]);
        assert_eq!(
            got,
            ConsumableLag {
                records: 19,
                first_offset: Some(0),
                exact: false
            }
        );
        // Nothing consumable in what was read: the first record can only be in the unread part.
        let got = consumable_lag(3, 20, &[marker(3, 7, false)], &[]);
        assert_eq!(
            got,
            ConsumableLag {
                records: 16,
                first_offset: Some(4),
                exact: false
            }
        );
    }

    #[test]
    fn high_watermark_lag_is_the_distance_to_the_end_and_never_negative() {
        let cases = [
            // (committed, log_end, lag)
            (90, 100, 10),
            (100, 100, 0),
            (0, 0, 0),
            (0, 7, 7),
            (120, 100, 0),
            (i64::MIN, i64::MAX, i64::MAX),
            (i64::MAX, i64::MIN, 0),
        ];
        for (committed, log_end, lag) in cases {
            assert_eq!(
                high_watermark_lag(committed, log_end),
                lag,
                "committed {committed}, end {log_end}"
            );
        }
    }
}
