//! What the tool prints: tables for people, JSON for scripts.

use crate::discover::Segment;
use serde_json::{json, Value as Json};
use shmproc::arena::ArenaStats;
use shmproc::inspect::{self, Pid, Reading, Snapshot};
use std::collections::BTreeSet;
use std::fmt::Write;
use std::time::SystemTime;

/// `n` bytes for a person: `512 B`, `12.5 KiB`, `1.0 MiB`, ...
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `n thing` or `n things`.
pub fn plural(n: u64, thing: &str) -> String {
    match (n, thing.ends_with('s')) {
        (1, _) => format!("1 {thing}"),
        (_, true) => format!("{n} {thing}es"),
        _ => format!("{n} {thing}s"),
    }
}

/// How long ago `t` was: `42s`, `5m`, `3h`, `2d`.
pub fn age(t: Option<SystemTime>) -> String {
    let Some(secs) = t.and_then(|t| SystemTime::now().duration_since(t).ok()) else {
        return "-".into();
    };
    let s = secs.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// Seconds since the epoch, for JSON.
fn epoch(t: Option<SystemTime>) -> Json {
    t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(Json::Null, |d| json!(d.as_secs_f64()))
}

fn pid_json(p: Pid) -> Json {
    json!({ "pid": p.pid, "alive": p.alive })
}

fn opt_pid_json(p: Option<Pid>) -> Json {
    p.map_or(Json::Null, pid_json)
}

/// A live-state value as JSON: numbers stay numbers (as strings past 64 bits).
fn value_json(v: &Reading) -> Json {
    match v {
        Reading::Int(i) => i64::try_from(*i)
            .map(Json::from)
            .or_else(|_| u64::try_from(*i).map(Json::from))
            .unwrap_or_else(|_| Json::from(i.to_string())),
        Reading::Bool(b) => Json::from(*b),
        Reading::Pid(p) => pid_json(*p),
        Reading::Text(t) => Json::from(t.as_str()),
        _ => Json::Null,
    }
}

fn stats_json(s: &ArenaStats) -> Json {
    json!({
        "size": s.size,
        "limit": s.limit,
        "used": s.used,
        "available": s.available,
        "overhead": s.overhead,
        "objects": s.objects,
        "blocks": s.blocks,
        "swept": s.swept,
        "repairs": s.repairs,
        "heap_repairs": s.heap_repairs,
    })
}

/// An arena found on the machine, with what a snapshot of it said.
pub struct Listed {
    /// What `shmproc inspect` takes.
    pub label: String,
    /// Its name in `/dev/shm`, if named.
    pub name: Option<String>,
    /// The live processes that map it or have a descriptor of it.
    pub attached: BTreeSet<u32>,
    /// The snapshot, or why there is none.
    pub snapshot: Result<Snapshot, shmproc::Error>,
}

impl Listed {
    /// Live processes in the arena's table.
    fn live_in_table(&self) -> usize {
        match &self.snapshot {
            Ok(s) => s.processes.iter().filter(|p| p.pid.alive).count(),
            Err(_) => 0,
        }
    }

    /// Whether `shmproc clean` removes it: a named arena whose creator is gone, in which
    /// no live process holds an object, and that no live process maps.
    pub fn orphan(&self) -> bool {
        self.name.is_some()
            && self.attached.is_empty()
            && self.snapshot.as_ref().is_ok_and(|s| s.is_orphan())
    }

    /// A word on its state for the listing.
    pub fn status(&self) -> String {
        match &self.snapshot {
            Err(e) => format!("unreadable: {e}"),
            Ok(_) if self.orphan() => "orphan (shmproc clean removes it)".into(),
            Ok(_) if self.name.is_none() => "anonymous".into(),
            Ok(s) if damaged(s) => "in use, damaged (see inspect)".into(),
            Ok(_) => "in use".into(),
        }
    }
}

/// A `SharedMemory` segment found in `/dev/shm`, with the live processes that map it.
pub struct ListedSegment {
    /// The segment and its header.
    pub seg: Segment,
    /// The live processes that map it (other than this one).
    pub attached: BTreeSet<u32>,
}

impl ListedSegment {
    /// Its creator and whether it is alive; `None` once persisted (no creator recorded).
    pub fn creator(&self) -> Option<Pid> {
        let h = &self.seg.header;
        (!h.is_persistent()).then(|| Pid::check(h.creator_pid, h.creator_start))
    }

    /// Whether `shmproc clean` removes it: what `shmproc::shared::cleanup_orphans`
    /// removes (this user's, not persisted, its creator gone), and no live process maps
    /// it.
    pub fn orphan(&self) -> bool {
        self.seg.header.is_orphan() && self.attached.is_empty()
    }

    /// Why `shmproc clean` keeps it (empty for an orphan).
    pub fn kept_because(&self) -> String {
        let h = &self.seg.header;
        let mut why = Vec::new();
        if h.owner != rustix::process::geteuid().as_raw() {
            why.push(format!("it belongs to another user (uid {})", h.owner));
        }
        match self.creator() {
            None => why.push(
                "it is persistent (SharedMemory::persist: meant to outlive its creator; \
                 remove it with SharedMemory::unlink_name)"
                    .to_string(),
            ),
            Some(p) if p.alive => why.push(format!("its creator {} is alive", p.pid)),
            Some(_) => {}
        }
        if !self.attached.is_empty() {
            let pids: Vec<String> = self.attached.iter().map(u32::to_string).collect();
            why.push(format!("process {} maps it", pids.join(", ")));
        }
        why.join("; ")
    }

    /// A word on its state for the listing.
    pub fn status(&self) -> String {
        let mut words = Vec::new();
        if self.orphan() {
            words.push("orphan (shmproc clean removes it)");
        } else if self.creator().is_none() {
            words.push("persistent");
        } else {
            words.push("in use");
        }
        if self.seg.header.is_truncated() {
            words.push("truncated: shorter than its header says");
        }
        words.join(", ")
    }
}

/// `shmproc ls`, for people.
pub fn ls_text(rows: &[Listed], segments: &[ListedSegment]) -> String {
    if rows.is_empty() && segments.is_empty() {
        return "no shmproc arena or segment on this machine (none in /dev/shm, none open in \
                a running process of this user)\n"
            .into();
    }
    let mut out = String::new();
    if !rows.is_empty() {
        out.push_str(&arenas_text(rows));
    }
    if !segments.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&segments_text(segments));
    }
    out
}

/// The segments of `shmproc ls`.
fn segments_text(segments: &[ListedSegment]) -> String {
    let mut table = vec![["SEGMENT", "SIZE", "ATTACHED", "CREATOR", "AGE", "STATUS"]
        .map(String::from)
        .to_vec()];
    for s in segments {
        table.push(vec![
            s.seg.name.clone(),
            bytes(s.seg.header.size),
            s.attached.len().to_string(),
            s.creator()
                .map_or_else(|| "- (persistent)".into(), |p| p.to_string()),
            age(s.seg.created),
            s.status(),
        ]);
    }
    columns(&table)
}

/// The arenas of `shmproc ls`.
fn arenas_text(rows: &[Listed]) -> String {
    let mut table = vec![[
        "ARENA", "SIZE", "USED", "OBJECTS", "ATTACHED", "CREATOR", "AGE", "STATUS",
    ]
    .map(String::from)
    .to_vec()];
    for r in rows {
        let mut row = vec![r.label.clone()];
        match &r.snapshot {
            Ok(s) => row.extend([
                bytes(s.stats.size as u64),
                bytes(s.stats.used as u64),
                s.stats.objects.to_string(),
                r.attached.len().max(r.live_in_table()).to_string(),
                s.creator.to_string(),
                age(s.created),
            ]),
            Err(_) => row.extend(std::iter::repeat_n("-".to_string(), 6)),
        }
        row.push(r.status());
        table.push(row);
    }
    columns(&table)
}

/// `shmproc ls --json`: the arenas (`"kind": "arena"`), then the segments (`"kind":
/// "segment"`).
pub fn ls_json(rows: &[Listed], segments: &[ListedSegment]) -> Json {
    let mut out = arenas_json(rows);
    out.extend(segments.iter().map(segment_json));
    Json::Array(out)
}

/// A segment for `ls --json` and `inspect --json`.
pub fn segment_json(s: &ListedSegment) -> Json {
    let h = &s.seg.header;
    json!({
        "kind": "segment",
        "name": s.seg.name,
        "size": h.size,
        "file_size": h.file_len,
        "owner": h.owner,
        "creator": opt_pid_json(s.creator()),
        "persistent": h.is_persistent(),
        "created": epoch(s.seg.created),
        "attached": s.attached,
        "orphan": s.orphan(),
        "truncated": h.is_truncated(),
    })
}

/// `shmproc inspect` of a segment, for people.
pub fn segment_text(s: &ListedSegment, source: &str) -> String {
    let h = &s.seg.header;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "segment {}  ({source}: a SharedMemory segment, raw bytes without objects)",
        s.seg.name
    );
    let _ = writeln!(
        out,
        "  size {} usable{}, file {} bytes{}",
        bytes(h.size),
        if h.size >= 1024 {
            format!(" ({} bytes)", h.size)
        } else {
            String::new()
        },
        h.file_len,
        if h.is_truncated() {
            ": TRUNCATED, shorter than its header says (SharedMemory::open refuses it)"
        } else {
            ""
        }
    );
    match s.creator() {
        Some(p) => {
            let _ = writeln!(
                out,
                "  made {} ago by {p} (started at tick {} since boot)",
                age(s.seg.created),
                h.creator_start
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  made {} ago; persistent: no creator recorded (SharedMemory::persist), so \
                 shmproc clean leaves it",
                age(s.seg.created)
            );
        }
    }
    let _ = writeln!(out, "  owner uid {}", h.owner);
    if !s.attached.is_empty() {
        let pids: Vec<String> = s.attached.iter().map(u32::to_string).collect();
        let _ = writeln!(out, "  mapped by {}", pids.join(", "));
    }
    if s.orphan() {
        out.push_str("  orphan: its creator is gone and no live process maps it (shmproc clean removes it)\n");
    } else {
        let _ = writeln!(out, "  kept by shmproc clean: {}", s.kept_because());
    }
    out
}

/// The arenas of `shmproc ls --json`.
fn arenas_json(rows: &[Listed]) -> Vec<Json> {
    rows.iter()
        .map(|r| {
            let mut j = json!({
                "kind": "arena",
                "arena": r.label,
                "name": r.name,
                "attached": r.attached,
                "orphan": r.orphan(),
            });
            match &r.snapshot {
                Ok(s) => {
                    j["size"] = json!(s.stats.size);
                    j["limit"] = json!(s.stats.limit);
                    j["used"] = json!(s.stats.used);
                    j["objects"] = json!(s.stats.objects);
                    j["processes"] = json!(s.processes.len());
                    j["live_processes"] = json!(r.live_in_table());
                    j["creator"] = pid_json(s.creator);
                    j["created"] = epoch(s.created);
                    j["damaged"] = json!(damaged(s));
                    j["error"] = Json::Null;
                }
                Err(e) => j["error"] = json!(e.to_string()),
            }
            j
        })
        .collect()
}

/// Aligns `rows` (the first is the heading) into columns; the last column is not padded.
pub fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                let _ = write!(line, "{c:<w$}  ", w = width[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The holders of an object for people: `1234, 1240 (dead)`.
fn holders_text(o: &inspect::ObjectInfo) -> String {
    if o.holders.is_empty() {
        return "-".into();
    }
    o.holders
        .iter()
        .map(|h| h.pid.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether the snapshot found damage: a table, an object, or an object's state that
/// could not be read.
pub fn damaged(s: &Snapshot) -> bool {
    !s.problems.is_empty() || s.objects.iter().any(|o| inspect::state(s, o).is_err())
}

/// `shmproc inspect`, for people.
pub fn inspect_text(s: &Snapshot, attached: &BTreeSet<u32>) -> String {
    let st = &s.stats;
    let mut out = String::new();
    let title = s.name.as_deref().unwrap_or("(anonymous)");
    let _ = writeln!(out, "arena {title}  ({}, id {:#018x})", s.source, s.id);
    let _ = writeln!(
        out,
        "  size {} of {} limit, {} used by objects, {} available, {} of tables",
        bytes(st.size as u64),
        bytes(st.limit as u64),
        bytes(st.used as u64),
        bytes(st.available as u64),
        bytes(st.overhead as u64)
    );
    let _ = writeln!(
        out,
        "  {} in {}; made {} ago by {}",
        plural(st.objects, "object"),
        plural(st.blocks, "heap block"),
        age(s.created),
        s.creator
    );
    let _ = writeln!(
        out,
        "  {} swept; metadata repaired {}, heap {}",
        plural(st.swept, "dead process"),
        plural(st.repairs, "time"),
        plural(st.heap_repairs, "time")
    );
    if !attached.is_empty() {
        let pids: Vec<String> = attached.iter().map(u32::to_string).collect();
        let _ = writeln!(out, "  mapped by {}", pids.join(", "));
    }
    for (what, holder) in [("metadata", s.metadata_lock), ("heap", s.heap_lock)] {
        match holder {
            Some(p) if p.alive => {
                let _ = writeln!(
                    out,
                    "  the {what} lock is held by {} (busy now; if it stays held, that \
                     process is stopped or stuck)",
                    p.pid
                );
            }
            Some(p) => {
                let _ = writeln!(
                    out,
                    "  the {what} lock is held by {}, which is dead: the next process \
                     that uses the arena repairs it",
                    p.pid
                );
            }
            None => {}
        }
    }
    if !s.consistent {
        out.push_str("  (the arena changed while it was read: figures may disagree)\n");
    }

    let _ = writeln!(out, "\nprocesses ({})", s.processes.len());
    if !s.processes.is_empty() {
        let mut t = vec![["PID", "ALIVE", "OBJECTS", "NOTE"]
            .map(String::from)
            .to_vec()];
        for p in &s.processes {
            let note = if p.pending {
                format!(
                    "being forked by {} (not yet running)",
                    p.parent.unwrap_or_default()
                )
            } else if !p.pid.alive {
                "dead: what it holds is released at the next sweep".into()
            } else {
                String::new()
            };
            t.push(vec![
                p.pid.pid.to_string(),
                if p.pid.alive { "yes" } else { "no" }.into(),
                p.objects.to_string(),
                note,
            ]);
        }
        indent(&mut out, &columns(&t));
    }

    let _ = writeln!(out, "\nobjects ({})", s.objects.len());
    if !s.objects.is_empty() {
        let mut t = vec![[
            "OFFSET", "KIND", "NAME", "GEN", "REFS", "SIZE", "HOLDERS", "STATE",
        ]
        .map(String::from)
        .to_vec()];
        for o in &s.objects {
            let kind = match o.kind {
                Some(k) => format!("{k:?}"),
                None if o.problem.is_some() => "?".into(),
                None => format!("kind {}", o.kind_code),
            };
            let state = match inspect::state(s, o) {
                Ok(fields) => fields
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                Err(_) if o.problem.is_some() => {
                    format!("DAMAGED: {}", o.problem.as_deref().unwrap_or_default())
                }
                Err(e) => format!("DAMAGED: {}", brief(&e)),
            };
            t.push(vec![
                format!("{:#x}", o.offset),
                kind,
                o.name.clone().unwrap_or_else(|| "-".into()),
                o.generation.to_string(),
                o.refs.to_string(),
                bytes(o.size),
                holders_text(o),
                state,
            ]);
        }
        indent(&mut out, &columns(&t));
    }
    if !s.problems.is_empty() {
        let _ = writeln!(out, "\nproblems ({})", s.problems.len());
        for p in &s.problems {
            let _ = writeln!(out, "  {p}");
        }
    }
    out
}

fn indent(out: &mut String, text: &str) {
    for line in text.lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
}

/// An error of the library as a short line (a corruption's own words).
pub fn brief(e: &shmproc::Error) -> String {
    match e {
        shmproc::Error::Corrupt(what) => what.clone(),
        e => e.to_string(),
    }
}

/// `shmproc inspect --json`.
pub fn inspect_json(s: &Snapshot, attached: &BTreeSet<u32>) -> Json {
    let objects: Vec<Json> = s
        .objects
        .iter()
        .map(|o| {
            let (state, problem) = match inspect::state(s, o) {
                Ok(fields) => {
                    let mut m = serde_json::Map::new();
                    for (k, v) in &fields {
                        m.insert((*k).to_string(), value_json(v));
                    }
                    (Json::Object(m), o.problem.clone())
                }
                Err(e) => (Json::Null, o.problem.clone().or_else(|| Some(brief(&e)))),
            };
            json!({
                "offset": o.offset,
                "kind": o.kind.map(|k| format!("{k:?}")),
                "kind_code": o.kind_code,
                "name": o.name,
                "generation": o.generation,
                "refs": o.refs,
                "size": o.size,
                "param": o.param,
                "type_fingerprint": o.type_fingerprint,
                "holders": o.holders.iter().map(|h| json!({
                    "pid": h.pid.pid, "alive": h.pid.alive, "opens": h.opens,
                })).collect::<Vec<_>>(),
                "state": state,
                "problem": problem,
            })
        })
        .collect();
    json!({
        "kind": "arena",
        "name": s.name,
        "source": s.source,
        "id": s.id,
        "created": epoch(s.created),
        "consistent": s.consistent,
        "orphan": s.name.is_some() && s.is_orphan() && attached.is_empty(),
        "stats": stats_json(&s.stats),
        "creator": pid_json(s.creator),
        "metadata_lock": opt_pid_json(s.metadata_lock),
        "heap_lock": opt_pid_json(s.heap_lock),
        "attached": attached,
        "processes": s.processes.iter().map(|p| json!({
            "pid": p.pid.pid,
            "alive": p.pid.alive,
            "start_time": p.start_time,
            "pending": p.pending,
            "parent": p.parent,
            "objects": p.objects,
        })).collect::<Vec<_>>(),
        "objects": objects,
        "problems": s.problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages_read_well() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(1 << 20), "1.0 MiB");
        assert_eq!(bytes(64 << 30), "64.0 GiB");
        let ago = |s| Some(SystemTime::now() - std::time::Duration::from_secs(s));
        assert_eq!(age(ago(5)), "5s");
        assert_eq!(age(ago(600)), "10m");
        assert_eq!(age(ago(3 * 3600)), "3h");
        assert_eq!(age(ago(3 * 86400)), "3d");
        assert_eq!(age(None), "-");
    }

    #[test]
    fn columns_line_up() {
        let t = vec![
            vec!["A".to_string(), "BB".into(), "C".into()],
            vec!["long".to_string(), "x".into(), "last".into()],
        ];
        assert_eq!(columns(&t), "A     BB  C\nlong  x   last\n");
    }
}
