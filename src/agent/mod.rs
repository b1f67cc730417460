//! The report agent: `ingest` (facts from an artifact folder, no model) and `analyze` (the
//! collector and insight agents on the engine, a grounded report).

pub mod ingest;
