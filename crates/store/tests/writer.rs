//! The writing connection, checked identically on SQLite (one connection
//! Herald keeps) and PostgreSQL (a pool): a transaction dropped before its
//! commit leaves nothing behind, and a caller that gives up in the middle of
//! `BEGIN` or `COMMIT` does not leave the next writer inside a transaction.
//! And on SQLite, a request's write goes ahead of the pipeline's line.

use std::task::Poll;

use futures::{poll, FutureExt};
use herald_store::{conformance, Db, Dialect, Store};
use sqlx::Row;

conformance!(
    a_dropped_transaction_is_rolled_back,
    giving_up_mid_begin_or_commit_leaves_the_next_writer_clean,
    writes_wait_for_the_writer_rather_than_fail,
);

async fn probe_table(db: &Db) {
    sqlx::query("CREATE TABLE writer_probe (n BIGINT NOT NULL)")
        .execute(&mut *db.writer().await.unwrap())
        .await
        .unwrap();
}

async fn insert(conn: &mut sqlx::AnyConnection, n: i64) {
    sqlx::query("INSERT INTO writer_probe (n) VALUES ($1)")
        .bind(n)
        .execute(conn)
        .await
        .unwrap();
}

/// What another connection sees: only committed rows.
async fn committed(db: &Db) -> Vec<i64> {
    sqlx::query("SELECT n FROM writer_probe ORDER BY n")
        .fetch_all(db.read())
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get("n").unwrap())
        .collect()
}

async fn a_dropped_transaction_is_rolled_back(store: Store) {
    let db = store.db();
    probe_table(db).await;
    {
        let mut tx = db.begin_write().await.unwrap();
        insert(&mut tx, 1).await;
    }
    let mut tx = db.begin_write().await.unwrap();
    insert(&mut tx, 2).await;
    tx.commit().await.unwrap();
    let tx = db.begin_write().await.unwrap();
    tx.rollback().await.unwrap();
    // Outside any transaction, a plain write is durable on its own.
    insert(&mut db.writer().await.unwrap(), 3).await;
    assert_eq!(committed(db).await, vec![2, 3]);
}

async fn giving_up_mid_begin_or_commit_leaves_the_next_writer_clean(store: Store) {
    let db = store.db();
    probe_table(db).await;
    // Polled once and dropped: `BEGIN` is on its way to the connection, or
    // done (then the dropped transaction rolls back as any other).
    drop(db.begin_write().now_or_never());
    let mut tx = db.begin_write().await.unwrap();
    insert(&mut tx, 1).await;
    tx.commit().await.unwrap();

    // Polled once and dropped: `COMMIT` may be on its way, and the dropped
    // transaction's rollback follows it.
    let mut tx = db.begin_write().await.unwrap();
    insert(&mut tx, 2).await;
    drop(tx.commit().now_or_never());

    let mut tx = db.begin_write().await.unwrap();
    insert(&mut tx, 3).await;
    tx.commit().await.unwrap();
    insert(&mut db.writer().await.unwrap(), 4).await;

    let rows = committed(db).await;
    assert!(rows.contains(&1) && rows.contains(&3) && rows.contains(&4));
    if db.dialect() == Dialect::Sqlite {
        // SQLite's connection runs what it was sent in order: the `COMMIT`
        // was sent on the first poll, before the dropped transaction's
        // rollback, which then found nothing to undo.
        assert_eq!(rows, vec![1, 2, 3, 4]);
    }
}

async fn writes_wait_for_the_writer_rather_than_fail(store: Store) {
    let db = store.db().clone();
    probe_table(&db).await;
    let writers = (0..40).map(|n| {
        let db = db.clone();
        tokio::spawn(async move {
            let mut tx = db.begin_write().await.unwrap();
            insert(&mut tx, n).await;
            tokio::task::yield_now().await;
            insert(&mut tx, 100 + n).await;
            tx.commit().await.unwrap();
        })
    });
    for writer in writers.collect::<Vec<_>>() {
        writer.await.unwrap();
    }
    let mut expected: Vec<i64> = (0..40).chain(100..140).collect();
    expected.sort_unstable();
    assert_eq!(committed(&db).await, expected);
}

/// SQLite only: there the pipeline's writers wait in a line of their own, and
/// a request's write ([`Store::for_requests`]) waits for the connection's
/// holder and at most the one pipeline writer already waiting for it. On
/// PostgreSQL every writer takes a connection of the pool, so there is no
/// line to go ahead of.
#[tokio::test]
async fn on_sqlite_a_requests_write_waits_for_at_most_one_pipeline_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = herald_store::testing::sqlite_store(dir.path())
        .await
        .unwrap();
    let requests = store.for_requests();
    let db = store.db();

    let holder = db.writer().await.unwrap();
    let mut line: Vec<_> = (0..4).map(|_| Box::pin(db.writer())).collect();
    for writer in &mut line {
        assert!(poll!(writer.as_mut()).is_pending());
    }
    let mut request = Box::pin(requests.db().writer());
    assert!(poll!(request.as_mut()).is_pending());

    // The first of the line was already waiting for the connection.
    drop(holder);
    let first = line[0].as_mut().await.unwrap();
    for writer in &mut line[1..] {
        assert!(poll!(writer.as_mut()).is_pending());
    }
    assert!(poll!(request.as_mut()).is_pending());

    // Then the request, ahead of the three still in line.
    drop(first);
    let Poll::Ready(answered) = poll!(request.as_mut()) else {
        panic!("the request's write is waiting behind the pipeline's line");
    };
    let answered = answered.unwrap();
    for writer in &mut line[1..] {
        assert!(poll!(writer.as_mut()).is_pending());
    }

    // The line moves on one at a time, in order.
    drop(answered);
    for n in 1..4 {
        let next = line[n].as_mut().await.unwrap();
        for later in &mut line[n + 1..] {
            assert!(poll!(later.as_mut()).is_pending());
        }
        drop(next);
    }
}
