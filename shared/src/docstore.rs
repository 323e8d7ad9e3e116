//! Document storage in SQLite, shared by the node and the sync server.
//!
//! Each document is a sequence of chunks in `doc_chunks`: an optional compacted snapshot
//! (`Automerge::save`) followed by incremental changes (`Automerge::save_after`). Loading
//! concatenates the chunks in order, which automerge accepts as one input. A document is
//! due for compaction into one snapshot when it has more than [`COMPACT_AFTER`] chunks and
//! its incremental chunks outweigh its snapshot (amortised O(1) per write); the node
//! compacts on a background thread ([`compact_stored`]), the server inline ([`persist`]).
//!
//! The functions take a `rusqlite::Connection` (or a transaction, which derefs to one) so
//! the caller decides the transaction boundaries: a fact's document change and its
//! projection rows commit together.

use std::collections::HashMap;
use std::time::Instant;

use automerge::{Automerge, ChangeHash, sync};
use rusqlite::{Connection, OptionalExtension, params};

use crate::docs::{self, DocError, DocId};

/// Number of incremental chunks after which a document is compacted into one snapshot.
pub const COMPACT_AFTER: i64 = 256;

/// Errors from document storage.
#[derive(Debug, thiserror::Error)]
pub enum DocStoreError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The stored bytes are not a valid automerge document.
    #[error("document {doc}: stored bytes do not load: {source}")]
    Corrupt {
        /// The document.
        doc: String,
        /// Automerge's reason.
        source: Box<automerge::AutomergeError>,
    },
    /// A document-level error.
    #[error(transparent)]
    Doc(#[from] DocError),
}

/// The tables this module owns. Idempotent.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS doc_chunks (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL,
    bytes  BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS doc_chunks_by_doc ON doc_chunks(doc_id, seq);
CREATE TABLE IF NOT EXISTS doc_heads (
    doc_id     TEXT PRIMARY KEY,
    heads      BLOB NOT NULL,
    chunks     INTEGER NOT NULL DEFAULT 0,
    base_bytes INTEGER NOT NULL DEFAULT 0,
    tail_bytes INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sync_states (
    peer   TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    state  BLOB NOT NULL,
    PRIMARY KEY (peer, doc_id)
);
";

/// Creates the tables.
///
/// # Errors
/// [`DocStoreError::Sqlite`].
pub fn migrate(conn: &Connection) -> Result<(), DocStoreError> {
    conn.execute_batch(SCHEMA)?;
    Ok(())
}

/// Loads a document from its chunks, or `None` if it has none.
///
/// # Errors
/// [`DocStoreError::Corrupt`] when the bytes do not load; [`DocStoreError::Sqlite`].
pub fn load(conn: &Connection, doc: &DocId) -> Result<Option<Automerge>, DocStoreError> {
    let mut stmt = conn.prepare_cached("SELECT bytes FROM doc_chunks WHERE doc_id = ?1 ORDER BY seq")?;
    let mut rows = stmt.query(params![doc.to_string()])?;
    let mut bytes = Vec::new();
    let mut any = false;
    while let Some(row) = rows.next()? {
        any = true;
        bytes.extend_from_slice(&row.get::<_, Vec<u8>>(0)?);
    }
    if !any {
        return Ok(None);
    }
    let mut am = Automerge::load(&bytes).map_err(|source| DocStoreError::Corrupt {
        doc: doc.to_string(),
        source: Box::new(source),
    })?;
    if matches!(doc, DocId::Catalog | DocId::Store { .. }) {
        // Give this process its own actor: never reuse the genesis actor for edits.
        am.set_actor(automerge::ActorId::random());
    }
    Ok(Some(am))
}

/// Deletes a document: its chunks, heads and every peer's sync state for it. Used when a
/// node hands a document over to head office (enrollment drops the local staff document).
///
/// # Errors
/// [`DocStoreError::Sqlite`].
pub fn delete(conn: &Connection, doc: &DocId) -> Result<(), DocStoreError> {
    let id = doc.to_string();
    conn.execute("DELETE FROM doc_chunks WHERE doc_id = ?1", params![id])?;
    conn.execute("DELETE FROM doc_heads WHERE doc_id = ?1", params![id])?;
    conn.execute("DELETE FROM sync_states WHERE doc_id = ?1", params![id])?;
    Ok(())
}

/// Ids of every stored document.
///
/// # Errors
/// [`DocStoreError::Sqlite`]; ids that do not parse are skipped.
pub fn list(conn: &Connection) -> Result<Vec<DocId>, DocStoreError> {
    let mut stmt = conn.prepare_cached("SELECT DISTINCT doc_id FROM doc_chunks ORDER BY doc_id")?;
    let ids = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for id in ids {
        if let Ok(d) = id?.parse() {
            out.push(d);
        }
    }
    Ok(out)
}

/// Stores what changed in `am` since `before` (nothing if nothing did), compacting the
/// document in place when [`append`] says it is due.
///
/// # Errors
/// [`DocStoreError::Sqlite`].
pub fn persist(
    conn: &Connection,
    doc: &DocId,
    am: &Automerge,
    before: &[ChangeHash],
) -> Result<(), DocStoreError> {
    if append(conn, doc, am, before)?.compact {
        compact(conn, doc, am)?;
    }
    Ok(())
}

/// What [`append`] stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Chunks the document now has (0 when nothing changed).
    pub chunks: i64,
    /// Whether it is time to compact: more than [`COMPACT_AFTER`] chunks **and** more
    /// bytes in incremental chunks than in the first (snapshot) chunk. The second rule
    /// makes compaction cost amortised O(1) per write however large the document grows.
    pub compact: bool,
}

/// Stores what changed in `am` since `before` without compacting, and says whether the
/// document is due for compaction, so the caller can compact later, off its hot path
/// ([`compact_stored`]).
///
/// # Errors
/// [`DocStoreError::Sqlite`].
pub fn append(
    conn: &Connection,
    doc: &DocId,
    am: &Automerge,
    before: &[ChangeHash],
) -> Result<Appended, DocStoreError> {
    let after = am.get_heads();
    if after == before {
        return Ok(Appended {
            chunks: 0,
            compact: false,
        });
    }
    let id = doc.to_string();
    // The first chunk of a document is all of it: a document created in memory may hold a
    // change the caller's `before` already covers (a shared genesis), and a stored
    // document must load on its own.
    let stored = conn
        .prepare_cached("SELECT 1 FROM doc_heads WHERE doc_id = ?1")?
        .query_row(params![id], |_| Ok(()))
        .optional()?
        .is_some();
    let chunk = if stored { am.save_after(before) } else { am.save() };
    let len = chunk.len() as i64;
    conn.prepare_cached("INSERT INTO doc_chunks (doc_id, bytes) VALUES (?1, ?2)")?
        .execute(params![id, chunk])?;
    let heads: Vec<u8> = after.iter().flat_map(|h| h.0).collect();
    let (chunks, base, tail): (i64, i64, i64) = conn
        .prepare_cached(
            "INSERT INTO doc_heads (doc_id, heads, chunks, base_bytes, tail_bytes) VALUES (?1, ?2, 1, ?3, 0)
             ON CONFLICT (doc_id) DO UPDATE SET heads = excluded.heads, chunks = chunks + 1,
               tail_bytes = tail_bytes + ?3
             RETURNING chunks, base_bytes, tail_bytes",
        )?
        .query_row(params![id, heads, len], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(Appended {
        chunks,
        compact: chunks > COMPACT_AFTER && tail > base,
    })
}

/// Compacts a document from what is stored, without the caller's in-memory copy: loads
/// the chunks present now, saves them as one snapshot and replaces exactly those chunks
/// with it (keeping the first chunk's position), in one transaction. Chunks appended by
/// another connection meanwhile are untouched and still load after the snapshot. Meant for
/// a background thread with its own connection.
///
/// Returns the number of chunks replaced (0 if there was nothing to do).
///
/// # Errors
/// [`DocStoreError::Sqlite`] (e.g. busy), [`DocStoreError::Corrupt`].
pub fn compact_stored(conn: &mut Connection, doc: &DocId) -> Result<usize, DocStoreError> {
    let id = doc.to_string();
    // Read and rebuild outside any write lock, so the writer is never held up by the
    // (document-sized) load and save.
    let rows: Vec<(i64, Vec<u8>)> = {
        let mut stmt =
            conn.prepare_cached("SELECT seq, bytes FROM doc_chunks WHERE doc_id = ?1 ORDER BY seq")?;
        stmt.query_map(params![id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?
    };
    if rows.len() < 2 {
        return Ok(0);
    }
    let bytes: Vec<u8> = rows.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    let am = Automerge::load(&bytes).map_err(|source| DocStoreError::Corrupt {
        doc: id.clone(),
        source: Box::new(source),
    })?;
    let snapshot = am.save();
    let (first, last) = (rows[0].0, rows[rows.len() - 1].0);
    // Swap under the write lock, only if exactly the chunks we read are still there.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let still: i64 = tx
        .prepare_cached("SELECT COUNT(*) FROM doc_chunks WHERE doc_id = ?1 AND seq BETWEEN ?2 AND ?3")?
        .query_row(params![id, first, last], |r| r.get(0))?;
    if still != rows.len() as i64 {
        return Ok(0);
    }
    tx.prepare_cached("DELETE FROM doc_chunks WHERE doc_id = ?1 AND seq BETWEEN ?2 AND ?3")?
        .execute(params![id, first, last])?;
    let replaced_tail: i64 = rows.iter().skip(1).map(|(_, b)| b.len() as i64).sum();
    tx.prepare_cached("INSERT INTO doc_chunks (seq, doc_id, bytes) VALUES (?1, ?2, ?3)")?
        .execute(params![first, id, snapshot])?;
    tx.prepare_cached(
        "UPDATE doc_heads SET chunks = chunks - ?2 + 1, base_bytes = ?3,
           tail_bytes = MAX(0, tail_bytes - ?4) WHERE doc_id = ?1",
    )?
    .execute(params![
        id,
        rows.len() as i64,
        snapshot.len() as i64,
        replaced_tail
    ])?;
    tx.commit()?;
    Ok(rows.len())
}

/// The stored heads of every document (without loading any), for announcing on connect.
///
/// # Errors
/// [`DocStoreError::Sqlite`]; rows whose id does not parse are skipped.
pub fn all_heads(conn: &Connection) -> Result<Vec<(DocId, Vec<ChangeHash>)>, DocStoreError> {
    let mut stmt = conn.prepare_cached("SELECT doc_id, heads FROM doc_heads ORDER BY doc_id")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (id, bytes) = row?;
        let Ok(doc) = id.parse::<DocId>() else { continue };
        let heads = bytes
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                ChangeHash(h)
            })
            .collect();
        out.push((doc, heads));
    }
    Ok(out)
}

/// Replaces a document's chunks with one snapshot.
///
/// # Errors
/// [`DocStoreError::Sqlite`].
pub fn compact(conn: &Connection, doc: &DocId, am: &Automerge) -> Result<(), DocStoreError> {
    let id = doc.to_string();
    let snapshot = am.save();
    conn.prepare_cached("DELETE FROM doc_chunks WHERE doc_id = ?1")?
        .execute(params![id])?;
    conn.prepare_cached("INSERT INTO doc_chunks (doc_id, bytes) VALUES (?1, ?2)")?
        .execute(params![id, snapshot])?;
    conn.prepare_cached(
        "UPDATE doc_heads SET chunks = 1, base_bytes = ?2, tail_bytes = 0 WHERE doc_id = ?1",
    )?
    .execute(params![id, snapshot.len() as i64])?;
    Ok(())
}

/// Saves the sync state with `peer` for `doc` (only the part automerge persists: the
/// shared heads).
///
/// # Errors
/// [`DocStoreError::Sqlite`].
pub fn save_state(
    conn: &Connection,
    peer: &str,
    doc: &DocId,
    state: &sync::State,
) -> Result<(), DocStoreError> {
    conn.prepare_cached(
        "INSERT INTO sync_states (peer, doc_id, state) VALUES (?1, ?2, ?3)
         ON CONFLICT (peer, doc_id) DO UPDATE SET state = excluded.state",
    )?
    .execute(params![peer, doc.to_string(), state.encode()])?;
    Ok(())
}

/// Loads a saved sync state; `None` if there is none or it does not decode (a fresh state
/// is always safe, only slower).
///
/// # Errors
/// [`DocStoreError::Sqlite`].
pub fn load_state(conn: &Connection, peer: &str, doc: &DocId) -> Result<Option<sync::State>, DocStoreError> {
    let bytes: Option<Vec<u8>> = conn
        .prepare_cached("SELECT state FROM sync_states WHERE peer = ?1 AND doc_id = ?2")?
        .query_row(params![peer, doc.to_string()], |r| r.get(0))
        .optional()?;
    Ok(bytes.and_then(|b| sync::State::decode(&b).ok()))
}

/// An in-memory cache of loaded documents over one SQLite database. Documents load on
/// demand and the least recently used leave memory beyond `capacity`.
#[derive(Debug)]
pub struct DocCache {
    docs: HashMap<DocId, (Automerge, Instant)>,
    capacity: usize,
}

impl DocCache {
    /// A cache that keeps at most `capacity` documents in memory (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            docs: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// The document, loaded from `conn` or created empty (not yet stored) if it does not
    /// exist.
    ///
    /// # Errors
    /// [`DocStoreError`] from loading.
    pub fn get_or_create(&mut self, conn: &Connection, doc: &DocId) -> Result<&mut Automerge, DocStoreError> {
        if !self.docs.contains_key(doc) {
            self.evict();
            let am = match load(conn, doc)? {
                Some(am) => am,
                None => docs::empty_doc(doc)?,
            };
            self.docs.insert(doc.clone(), (am, Instant::now()));
        }
        let entry = self
            .docs
            .get_mut(doc)
            .ok_or_else(|| DocError::Schema("cache entry vanished".into()))?;
        entry.1 = Instant::now();
        Ok(&mut entry.0)
    }

    /// Drops a document from memory (e.g. after a failed write, so the next use reloads
    /// the durable state).
    pub fn forget(&mut self, doc: &DocId) {
        self.docs.remove(doc);
    }

    /// Drops every document from memory.
    pub fn clear(&mut self) {
        self.docs.clear();
    }

    fn evict(&mut self) {
        while self.docs.len() >= self.capacity {
            let Some(oldest) = self
                .docs
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone())
            else {
                return;
            };
            self.docs.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_created_in_memory_stores_its_genesis_with_its_first_change() {
        // The node creates `store/<s>` from the shared genesis in memory, then persists
        // only what changed after the genesis heads: the stored document must still load.
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        let id: DocId = "store/s1".parse().unwrap();
        let mut cache = DocCache::new(4);
        let am = cache.get_or_create(&conn, &id).unwrap();
        let before = am.get_heads();
        assert!(!before.is_empty(), "the genesis is a change");
        crate::docs::store::put_roles(am, &[("clerk".to_string(), vec![])].into(), &[]).unwrap();
        persist(&conn, &id, am, &before).unwrap();
        let loaded = load(&conn, &id).unwrap().expect("stored");
        assert!(crate::docs::store::roles(&loaded).unwrap().contains_key("clerk"));
        // And later changes still append as increments.
        let before = am.get_heads();
        crate::docs::store::put_roles(am, &[("other".to_string(), vec![])].into(), &[]).unwrap();
        persist(&conn, &id, am, &before).unwrap();
        assert_eq!(
            crate::docs::store::roles(&load(&conn, &id).unwrap().unwrap())
                .unwrap()
                .len(),
            2
        );
    }
    use crate::facts::tests_support::sample;

    #[test]
    fn chunks_load_back_and_compact() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        let doc: DocId = "ledger/a/2024-01-01".parse().unwrap();
        let mut am = docs::ledger_empty();
        for _ in 0..(COMPACT_AFTER + 5) {
            let before = am.get_heads();
            let mut f = sample();
            f.id = crate::ids::FactId::new();
            docs::append_facts(&mut am, &[f]).unwrap();
            persist(&conn, &doc, &am, &before).unwrap();
        }
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM doc_chunks", [], |r| r.get(0))
            .unwrap();
        assert!(n < COMPACT_AFTER, "compacted, {n} chunks");
        let back = load(&conn, &doc).unwrap().unwrap();
        assert_eq!(back.get_heads(), am.get_heads());
        assert_eq!(docs::ledger_len(&back), (COMPACT_AFTER + 5) as usize);
        assert_eq!(list(&conn).unwrap(), vec![doc.clone()]);
        assert_eq!(all_heads(&conn).unwrap(), vec![(doc.clone(), am.get_heads())]);
        let mut cache = DocCache::new(1);
        assert_eq!(
            docs::ledger_len(cache.get_or_create(&conn, &doc).unwrap()),
            (COMPACT_AFTER + 5) as usize
        );
    }

    #[test]
    fn background_compaction_keeps_later_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let writer = Connection::open(&path).unwrap();
        writer.execute_batch("PRAGMA journal_mode=WAL;").unwrap();
        migrate(&writer).unwrap();
        let mut compactor = Connection::open(&path).unwrap();
        let doc: DocId = "ledger/a/2024-01-01".parse().unwrap();
        let mut am = docs::ledger_empty();
        let add = |am: &mut Automerge| {
            let before = am.get_heads();
            let mut f = sample();
            f.id = crate::ids::FactId::new();
            docs::append_facts(am, &[f]).unwrap();
            append(&writer, &doc, am, &before).unwrap().chunks
        };
        for _ in 0..10 {
            add(&mut am);
        }
        assert_eq!(compact_stored(&mut compactor, &doc).unwrap(), 10);
        assert_eq!(add(&mut am), 2, "snapshot + the chunk written after it");
        let back = load(&writer, &doc).unwrap().unwrap();
        assert_eq!(back.get_heads(), am.get_heads());
        assert_eq!(docs::ledger_len(&back), 11);
    }

    #[test]
    fn corrupt_bytes_are_an_error_not_a_panic() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        conn.execute(
            "INSERT INTO doc_chunks (doc_id, bytes) VALUES ('catalog', x'deadbeef')",
            [],
        )
        .unwrap();
        assert!(matches!(
            load(&conn, &DocId::Catalog),
            Err(DocStoreError::Corrupt { .. })
        ));
    }
}
