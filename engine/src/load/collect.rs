//! The collector: puts chunk results back in file order, so that dead letters get their
//! file line numbers, and adds up the per-file counts.
//!
//! A chunk knows its lines only relative to its own start; the line number of its first
//! line is the sum of the line counts of the chunks before it in the same file. Chunks are
//! started in file order and finish roughly in order, so only a few wait here at a time.

use std::collections::BTreeMap;

use super::dead_letter::DeadLetterWriter;
use super::dedup::IdSpill;
use super::report::FileReport;
use super::worker::ChunkDone;
use crate::source::ExportFile;
use crate::terminology::UnmappedCounts;

/// Per-file progress of the collector.
#[derive(Default)]
struct FileState {
    next_chunk: u32,
    line_base: u64,
    /// Results of later chunks, each chunk's hand-offs in the order they were sent.
    waiting: BTreeMap<u32, Vec<ChunkDone>>,
}

/// What the collector hands back once every chunk is in.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub files: Vec<FileReport>,
    /// Per file, the resources loaded by type. A short list rather than a map: most files
    /// hold one type, and an empty map's first node (room for eleven entries) cost 368
    /// bytes a file, a fifth of what an export of many small files keeps per file.
    pub loaded_by_type: Vec<Vec<(String, u64)>>,
    pub without_view: BTreeMap<String, u64>,
    /// Codes the crosswalks did not map, all chunks together.
    pub unmapped: UnmappedCounts,
}

/// Orders chunk results and writes dead letters.
pub(crate) struct Collector<'a> {
    files: &'a [ExportFile],
    /// Indexed by file: forty bytes a file, where a map's entries and its growth by
    /// doubling cost twice that and more.
    state: Vec<FileState>,
    dead_letters: DeadLetterWriter,
    ids: IdSpill,
    collected: Collected,
}

impl<'a> Collector<'a> {
    pub fn new(files: &'a [ExportFile], dead_letters: DeadLetterWriter, ids: IdSpill) -> Self {
        let collected = Collected {
            files: files
                .iter()
                .map(|f| FileReport {
                    path: f.location.to_string(),
                    declared_type: f.declared_type.clone(),
                    type_from_name: f.type_from_name,
                    ..FileReport::default()
                })
                .collect(),
            loaded_by_type: vec![Vec::new(); files.len()],
            without_view: BTreeMap::new(),
            unmapped: UnmappedCounts::default(),
        };
        let state = files.iter().map(|_| FileState::default()).collect();
        Collector { files, state, dead_letters, ids, collected }
    }

    /// Takes one chunk's result and finalises every chunk now in order.
    ///
    /// # Errors
    ///
    /// Writing a dead letter failed.
    pub fn accept(&mut self, done: ChunkDone) -> anyhow::Result<()> {
        let file_id = done.file;
        let state = &mut self.state[file_id];
        if done.index != state.next_chunk || !state.waiting.is_empty() {
            // A later chunk's results (interim hand-offs included, in the order sent) wait
            // for the line counts of the chunks before it.
            state.waiting.entry(done.index).or_default().push(done);
            return self.drain(file_id);
        }
        Self::take(self.files, &mut self.dead_letters, &mut self.ids, &mut self.collected, state, done)?;
        self.drain(file_id)
    }

    /// Finalises every waiting result of `file_id` that is now in order.
    fn drain(&mut self, file_id: usize) -> anyhow::Result<()> {
        let state = &mut self.state[file_id];
        while let Some(pieces) = state.waiting.remove(&state.next_chunk) {
            for done in pieces {
                Self::take(self.files, &mut self.dead_letters, &mut self.ids, &mut self.collected, state, done)?;
            }
        }
        if state.waiting.is_empty() {
            // An emptied map keeps its node (room for eleven results, kilobytes) for good:
            // with one state per file, an export of 100,000 small files held hundreds of
            // megabytes of them. A fresh map allocates nothing.
            state.waiting = BTreeMap::new();
        }
        Ok(())
    }

    /// Writes the dead letters and ids of one result of the file's next chunk, and when it
    /// is the chunk's last, adds its counts and moves on to the next chunk.
    fn take(
        files: &[ExportFile],
        dead_letters: &mut DeadLetterWriter,
        ids: &mut IdSpill,
        collected: &mut Collected,
        state: &mut FileState,
        done: ChunkDone,
    ) -> anyhow::Result<()> {
        let file_id = done.file;
        let file = &files[file_id];
        for dead in &done.dead {
            let line = state.line_base + dead.index + 1;
            dead_letters.write(file_id, &file.name(), &file.location, line, dead)?;
        }
        for record in &done.ids {
            ids.push(file_id, state.line_base + record.index + 1, record)?;
        }
        if !done.last {
            return Ok(());
        }
        state.line_base += done.report.lines;
        state.next_chunk += 1;
        collected.files[file_id].add(&done.report);
        let loaded_by_type = &mut collected.loaded_by_type[file_id];
        for (t, n) in done.loaded_by_type {
            match loaded_by_type.iter_mut().find(|(known, _)| *known == t) {
                Some((_, count)) => *count += n,
                None => loaded_by_type.push((t, n)),
            }
        }
        collected.unmapped.merge(done.unmapped);
        for (t, n) in done.without_view {
            *collected.without_view.entry(t).or_default() += n;
        }
        Ok(())
    }

    /// Flushes the key spill and returns the counts with the dead-letter writer, which
    /// duplicate resolution goes on writing to.
    ///
    /// # Errors
    ///
    /// Flushing the key spill failed.
    pub fn finish(self) -> anyhow::Result<(Collected, DeadLetterWriter, std::path::PathBuf)> {
        let ids = self.ids.finish()?;
        Ok((self.collected, self.dead_letters, ids))
    }
}
