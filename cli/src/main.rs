//! `shmproc`: see and clean up what shmproc programs keep in shared memory.
//!
//! ```text
//! shmproc ls                      every arena (and SharedMemory segment) on this machine
//! shmproc inspect jobs            one arena: figures, processes, every object's state
//! shmproc inspect pid:4242        the anonymous arena of process 4242
//! shmproc inspect myseg           a SharedMemory segment: its header
//! shmproc inspect jobs --watch 1  the same, refreshed every second
//! shmproc clean                   what `shmproc clean --yes` would remove
//! shmproc clean --yes             remove it
//! ```
//!
//! Everything is read from a private copy of the arena (`shmproc::inspect`): the tool
//! takes no lock and writes nothing, so it can look at an arena whose lock a stopped
//! process holds, and a damaged arena gives a message or a partial listing.

mod discover;
mod render;

use clap::{Parser, Subcommand};
use discover::{Found, Mappers};
use render::{Listed, ListedSegment};
use shmproc::inspect::Snapshot;
use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

const ABOUT: &str = "See and clean up the shared memory of shmproc programs.";

const LONG_ABOUT: &str = "\
See and clean up the shared memory of shmproc programs.

A shmproc program keeps its locks, queues, pipes and shared values in an arena: a named
file in /dev/shm (Arena::create), or an anonymous memory file that the program and its
forked children share (Arena::anonymous, and the global arena behind Lock::new() and
friends). This tool lists the arenas, shows what is inside one while its programs run
(which process holds which lock, how many messages wait in a queue, ...), and removes the
named arenas and SharedMemory segments that crashed programs left behind.

It only reads: every arena is read through a private copy, without taking its locks, so
looking never disturbs the programs, and a stuck or damaged arena cannot make the tool
hang or crash.";

const EXIT_CODES: &str = "\
Exit status:
  0  done (also when the reader of the output stops early: `shmproc inspect x | head`)
  1  failed: the arena could not be read (no such arena, not an arena, permission
     denied), or an arena could not be removed
  2  the command line is wrong (see --help)
  3  done, but damage was found: `inspect` lists it under \"problems\" (or DAMAGED in an
     object's state), `ls` as \"damaged\"; a segment shorter than its header says";

#[derive(Parser, Debug)]
#[command(
    name = "shmproc",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXIT_CODES,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List every shmproc arena on this machine (the named ones in /dev/shm and the
    /// anonymous ones of running processes) and the SharedMemory segments in /dev/shm.
    #[command(after_help = EXIT_CODES, long_about = "\
List every shmproc arena on this machine: the named ones in /dev/shm, and the anonymous
ones that running processes of this user have open (shown as /proc/<pid>/fd/<n>, a path
`shmproc inspect` takes).

Columns: SIZE is the arena's file now (it grows up to its limit), USED the bytes its
objects take, ATTACHED the live processes that map it (or hold objects in it), CREATOR the
process that made it (\"(dead)\" once it is gone), AGE the time since it was made. A
named arena whose creator is gone and that no live process uses is an orphan:
`shmproc clean` removes it.

SharedMemory segments (shmproc::shared::SharedMemory: raw bytes, no objects) follow in a
table of their own: SIZE is their usable bytes, CREATOR the process that made them (none
once persisted: SharedMemory::persist), AGE the time since they were named. A segment
whose creator is gone, that is not persistent and that no live process maps is an orphan
(the rule of shmproc::shared::cleanup_orphans, plus the mappings).

With --json: one array, one object per arena (\"kind\": \"arena\") then per segment
(\"kind\": \"segment\").")]
    Ls {
        /// Print JSON (an array, one object per arena) instead of a table.
        #[arg(long)]
        json: bool,
        /// Only the named arenas in /dev/shm (do not look through other processes'
        /// descriptors).
        #[arg(long)]
        named: bool,
    },
    /// Show one arena: its figures, its processes, and every object with its holders and
    /// live state.
    #[command(after_help = EXIT_CODES, long_about = "\
Show one arena: its figures, the processes in its table (alive or dead), and every object
in it, named or anonymous: its offset, kind, name, generation, references, size, the
processes that hold it, and its live state (a lock's holder, a semaphore's value, a
queue's length and capacity, a pipe's bytes in flight, an event's flag, a barrier's
parties, a dict's length, ...).

ARENA is one of:
  NAME              a named arena, /dev/shm/NAME
  /path/to/file     an arena file, or /proc/<pid>/fd/<n> (as `shmproc ls` shows
                    anonymous arenas)

A SharedMemory segment (NAME or a path) shows its header instead: its size, its creator
and whether it is alive (or that it is persistent), the processes that map it, and
whether `shmproc clean` would remove it.
  pid:<pid>         the anonymous arena of a running process (its global arena, where
                    Lock::new(), Queue::new() ... put their objects)

The arena is read through a private copy, without its locks: a value is exact when
nothing is changing it, a moment's view otherwise.")]
    Inspect {
        /// The arena: a name in /dev/shm, a path, or pid:<pid>.
        arena: String,
        /// Print JSON instead of tables (with --watch: one JSON document per line).
        #[arg(long)]
        json: bool,
        /// Show it again every SECS seconds (default 2) until interrupted (Ctrl-C).
        #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "2")]
        watch: Option<f64>,
        /// With --watch: stop after this many refreshes.
        #[arg(long, value_name = "N", requires = "watch")]
        count: Option<u64>,
    },
    /// Remove the named arenas and SharedMemory segments that crashed programs left in
    /// /dev/shm: those whose creator is gone and that no live process uses.
    #[command(after_help = EXIT_CODES, long_about = "\
Remove the named arenas that crashed (or careless) programs left in /dev/shm: those whose
creator is gone, in which no live process holds an object, and that no live process
maps (a process that has the arena open maps it, whether it holds objects or not). An
arena a live process uses is never removed, nor one that cannot be read (it is listed as
skipped, with the reason). Processes that still have a removed arena mapped keep it (as
with any deleted file).

A SharedMemory segment is removed when shmproc::shared::cleanup_orphans would remove it
(it is this user's, its creator is gone, and it was not persisted with
SharedMemory::persist) and no live process maps it.

Anonymous arenas need no cleaning: they vanish with the last process that has them.")]
    Clean {
        /// Remove them (without it, only say what would be removed).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
        /// Only these arenas or segments (names in /dev/shm); by default every one there.
        #[arg(value_name = "NAME")]
        names: Vec<String>,
    },
}

/// Why a command stopped early.
enum Failure {
    /// A failure to report (exit status 1).
    Says(String),
    /// The reader of the output went away (`shmproc inspect x | head`): a normal end,
    /// exit status 0 and nothing said.
    StdoutClosed,
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Says(e.to_string())
    }
}

impl Failure {
    /// The failure in words.
    fn text(&self) -> &str {
        match self {
            Failure::Says(s) => s,
            Failure::StdoutClosed => "the output was closed",
        }
    }
}

/// An error writing the output: a closed pipe is the reader's normal end.
fn written(e: std::io::Error) -> Failure {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Failure::StdoutClosed
    } else {
        Failure::Says(format!("cannot write the output: {e}"))
    }
}

/// Writes `text` to stdout.
fn out(text: &str) -> Result<(), Failure> {
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())
        .and_then(|()| o.flush())
        .map_err(written)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ls { json, named } => ls(json, named),
        Command::Inspect {
            arena,
            json,
            watch,
            count,
        } => inspect(&arena, json, watch, count),
        Command::Clean { yes, json, names } => clean(!yes, json, &names),
    };
    match result {
        Ok(code) => code,
        Err(Failure::StdoutClosed) => ExitCode::SUCCESS,
        Err(Failure::Says(msg)) => {
            let _ = std::io::stdout().flush();
            eprintln!("shmproc: error: {msg}");
            ExitCode::from(1)
        }
    }
}

/// Exit status 3: done, damage found.
const DAMAGED: u8 = 3;

fn print_json(j: &serde_json::Value) -> Result<(), Failure> {
    let mut o = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut o, j)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(o))
        .and_then(|()| o.flush())
        .map_err(written)
}

/// Every arena found (the named ones in `only`, if not empty), each with its snapshot and
/// the live processes attached; and the segments in `/dev/shm` (those in `only`).
fn listing(
    named_only: bool,
    only: &[String],
) -> Result<(Vec<Listed>, Vec<ListedSegment>), Failure> {
    let (mut found, mut segments) = discover::named()
        .map_err(|e| format!("cannot list /dev/shm: {e} (is /dev/shm mounted?)"))?;
    if !named_only {
        found.extend(discover::anonymous());
    }
    if !only.is_empty() {
        found.retain(|f| f.name.as_ref().is_some_and(|n| only.contains(n)));
        segments.retain(|s| only.contains(&s.name));
    }
    let maps = Mappers::scan();
    let segments = segments
        .into_iter()
        .map(|seg| ListedSegment {
            attached: maps.of(seg.key),
            seg,
        })
        .collect();
    Ok((
        found.into_iter().map(|f| listed(f, &maps)).collect(),
        segments,
    ))
}

fn listed(f: Found, maps: &Mappers) -> Listed {
    let snapshot = match &f.name {
        Some(n) => Snapshot::open(n),
        None => Snapshot::from_path(&f.path),
    };
    let mut attached = maps.of(f.key);
    attached.extend(&f.fd_holders);
    Listed {
        label: f.label,
        name: f.name,
        attached,
        snapshot,
    }
}

fn ls(json: bool, named_only: bool) -> Result<ExitCode, Failure> {
    let (rows, segments) = listing(named_only, &[])?;
    if json {
        print_json(&render::ls_json(&rows, &segments))?;
    } else {
        out(&render::ls_text(&rows, &segments))?;
    }
    let damaged = rows
        .iter()
        .any(|r| r.snapshot.as_ref().is_ok_and(render::damaged))
        || segments.iter().any(|s| s.seg.header.is_truncated());
    Ok(if damaged {
        ExitCode::from(DAMAGED)
    } else {
        ExitCode::SUCCESS
    })
}

/// Where `shmproc inspect ARENA` reads from.
enum Target {
    Named(String),
    Path(std::path::PathBuf),
}

fn target(arena: &str) -> Result<(Target, Option<discover::FileKey>), Failure> {
    if let Some(pid) = arena.strip_prefix("pid:") {
        let pid: u32 = pid
            .parse()
            .map_err(|_| format!("{arena:?}: after pid: comes a process id, e.g. pid:4242"))?;
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return Err(Failure::Says(format!("no process {pid} is running")));
        }
        let found = discover::anonymous_of_pid(pid);
        return match found.as_slice() {
            [] => Err(Failure::Says(format!(
                "process {pid} has no anonymous shmproc arena open (or it belongs to another \
                 user): `shmproc ls` lists the arenas"
            ))),
            [one] => Ok((Target::Path(one.path.clone()), Some(one.key))),
            many => Err(Failure::Says(format!(
                "process {pid} has {} anonymous arenas: name one of {}",
                many.len(),
                many.iter()
                    .map(|f| f.label.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        };
    }
    if arena.contains('/') {
        return Ok((Target::Path(arena.into()), None));
    }
    Ok((Target::Named(arena.to_string()), None))
}

/// A snapshot of `t`, with the error said for a person.
fn take(t: &Target, arena: &str) -> Result<Snapshot, Failure> {
    let r = match t {
        Target::Named(n) => Snapshot::open(n),
        Target::Path(p) => Snapshot::from_path(p),
    };
    r.map_err(|e| match e {
        shmproc::Error::NoSuchArena(_) => Failure::Says(match t {
            Target::Named(n) => format!(
                "no arena named {n:?} in /dev/shm: `shmproc ls` lists the arenas (an anonymous \
                 one is named by its process: pid:<pid>)"
            ),
            Target::Path(p) => format!("{} does not exist", p.display()),
        }),
        shmproc::Error::NotAnArena if is_empty(t) => Failure::Says(format!(
            "{arena} is empty: not (yet) an arena (if its creator is making it, try again in \
             a moment)"
        )),
        shmproc::Error::NotAnArena => Failure::Says(format!(
            "{arena} is not a shmproc arena (no shmproc header)"
        )),
        e => Failure::Says(format!("{arena}: {e}")),
    })
}

/// The file of `t`.
fn path_of(t: &Target) -> std::path::PathBuf {
    match t {
        Target::Named(n) => Path::new("/dev/shm").join(n),
        Target::Path(p) => p.clone(),
    }
}

/// Whether the file of `t` is empty now.
fn is_empty(t: &Target) -> bool {
    std::fs::metadata(path_of(t)).is_ok_and(|m| m.len() == 0)
}

/// The segment `t` names, if it names one.
fn segment_of(t: &Target) -> Option<discover::Segment> {
    match t {
        Target::Named(n) => match discover::named_kind(n) {
            Some(discover::Kind::Segment(s)) => Some(s),
            _ => None,
        },
        Target::Path(p) => discover::segment_at(p),
    }
}

/// `shmproc inspect` of a segment: its header (shown once: it does not change, but for
/// the liveness of its creator).
fn inspect_segment(
    seg: discover::Segment,
    t: &Target,
    json: bool,
    watch: bool,
) -> Result<ExitCode, Failure> {
    let s = ListedSegment {
        attached: Mappers::scan().of(seg.key),
        seg,
    };
    if json {
        let j = render::segment_json(&s);
        if watch {
            // One document per line, as --watch --json promises.
            out(&format!("{j}\n"))?;
        } else {
            print_json(&j)?;
        }
    } else {
        let mut text = render::segment_text(&s, &path_of(t).display().to_string());
        if watch {
            text.push_str("  (shown once: a segment has no live state to refresh)\n");
        }
        out(&text)?;
    }
    Ok(if s.seg.header.is_truncated() {
        ExitCode::from(DAMAGED)
    } else {
        ExitCode::SUCCESS
    })
}

/// The live processes that map or hold open the arena of `s` (from `/proc`).
fn attached(s: &Snapshot, t: &Target, key: Option<discover::FileKey>) -> BTreeSet<u32> {
    let key = key.or_else(|| {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path_of(t)).ok()?;
        Some((
            rustix::fs::major(m.dev()),
            rustix::fs::minor(m.dev()),
            m.ino(),
        ))
    });
    let mut pids = key.map(|k| Mappers::scan().of(k)).unwrap_or_default();
    if s.name.is_none() {
        if let Some(k) = key {
            for f in discover::anonymous() {
                if f.key == k {
                    pids.extend(f.fd_holders);
                }
            }
        }
    }
    pids
}

fn inspect(
    arena: &str,
    json: bool,
    watch: Option<f64>,
    count: Option<u64>,
) -> Result<ExitCode, Failure> {
    let (t, key) = target(arena)?;
    if let Some(seg) = segment_of(&t) {
        return inspect_segment(seg, &t, json, watch.is_some());
    }
    let Some(every) = watch else {
        let s = take(&t, arena)?;
        let pids = attached(&s, &t, key);
        if json {
            print_json(&render::inspect_json(&s, &pids))?;
        } else {
            out(&render::inspect_text(&s, &pids))?;
        }
        return Ok(if render::damaged(&s) {
            ExitCode::from(DAMAGED)
        } else {
            ExitCode::SUCCESS
        });
    };
    if !every.is_finite() || every < 0.0 {
        return Err(Failure::Says(format!(
            "--watch takes a number of seconds, not {every}"
        )));
    }
    let every = Duration::from_secs_f64(every.max(0.05));
    let tty = std::io::stdout().is_terminal();
    let mut n = 0u64;
    let code = loop {
        n += 1;
        let frame = take(&t, arena);
        // The frame in one string, written at once.
        let mut text = String::new();
        if json {
            // One document per line, for a consumer that reads line by line.
            let doc = match &frame {
                Ok(s) => render::inspect_json(s, &attached(s, &t, key)),
                Err(e) => serde_json::json!({ "error": e.text() }),
            };
            text = format!("{doc}\n");
        } else {
            use std::fmt::Write as _;
            if tty {
                // Home and clear: the frame replaces the last one.
                text.push_str("\x1b[H\x1b[2J");
            } else if n > 1 {
                text.push('\n');
            }
            let _ = writeln!(
                text,
                "shmproc inspect {arena}: every {:.1} s, refresh {n}{} (Ctrl-C stops)\n",
                every.as_secs_f64(),
                count.map(|c| format!(" of {c}")).unwrap_or_default()
            );
            match &frame {
                Ok(s) => text.push_str(&render::inspect_text(s, &attached(s, &t, key))),
                Err(e) => {
                    let _ = writeln!(text, "error: {}", e.text());
                }
            }
        }
        out(&text)?;
        if count.is_some_and(|c| n >= c) {
            break match &frame {
                Ok(s) if render::damaged(s) => ExitCode::from(DAMAGED),
                Ok(_) => ExitCode::SUCCESS,
                Err(_) => ExitCode::from(1),
            };
        }
        std::thread::sleep(every);
    };
    Ok(code)
}

/// What `clean` did (or would do) with one arena.
enum Outcome {
    Removed,
    Kept(String),
    Skipped(String),
    Failed(String),
}

fn clean(dry_run: bool, json: bool, only: &[String]) -> Result<ExitCode, Failure> {
    let (rows, segments) = listing(true, only)?;
    // (name, kind, outcome)
    let mut outcomes: Vec<(String, &str, Outcome)> = Vec::new();
    for n in only {
        if !rows.iter().any(|r| r.name.as_ref() == Some(n))
            && !segments.iter().any(|s| &s.seg.name == n)
        {
            outcomes.push((
                n.clone(),
                "-",
                Outcome::Skipped("no shmproc arena or segment of that name in /dev/shm".into()),
            ));
        }
    }
    for r in &rows {
        let name = r.name.clone().unwrap_or_default();
        let outcome = match &r.snapshot {
            Err(e) => Outcome::Skipped(format!("cannot be read: {}", render::brief(e))),
            Ok(_) if !r.orphan() => Outcome::Kept(in_use(r)),
            Ok(_) if dry_run => Outcome::Removed,
            Ok(_) => remove(&name),
        };
        outcomes.push((name, "arena", outcome));
    }
    for s in &segments {
        let outcome = if !s.orphan() {
            Outcome::Kept(s.kept_because())
        } else if dry_run {
            Outcome::Removed
        } else {
            remove_segment(&s.seg.name)
        };
        outcomes.push((s.seg.name.clone(), "segment", outcome));
    }
    let failed = outcomes
        .iter()
        .any(|(_, _, o)| matches!(o, Outcome::Failed(_)));
    if json {
        let pick = |f: fn(&Outcome) -> Option<&str>| {
            outcomes
                .iter()
                .filter_map(|(n, k, o)| {
                    f(o).map(|why| serde_json::json!({ "name": n, "kind": k, "reason": why }))
                })
                .collect::<Vec<_>>()
        };
        print_json(&serde_json::json!({
            "dry_run": dry_run,
            "removed": outcomes.iter().filter(|(_, _, o)| matches!(o, Outcome::Removed)).map(|(n, _, _)| n).collect::<Vec<_>>(),
            "kept": pick(|o| if let Outcome::Kept(w) = o { Some(w) } else { None }),
            "skipped": pick(|o| if let Outcome::Skipped(w) = o { Some(w) } else { None }),
            "failed": pick(|o| if let Outcome::Failed(w) = o { Some(w) } else { None }),
        }))?;
    } else {
        let removed = if dry_run { "would remove" } else { "removed" };
        let mut table = Vec::new();
        for (n, k, o) in &outcomes {
            let (what, why) = match o {
                Outcome::Removed if *k == "segment" => (
                    removed,
                    "orphaned SharedMemory segment: its creator is gone, it is not persistent, \
                     no live process maps it"
                        .to_string(),
                ),
                Outcome::Removed => (
                    removed,
                    "orphan: its creator is gone, no live process uses it".to_string(),
                ),
                Outcome::Kept(w) if *k == "segment" => {
                    ("kept", format!("SharedMemory segment: {w}"))
                }
                Outcome::Kept(w) => ("kept", w.clone()),
                Outcome::Skipped(w) => ("skipped", w.clone()),
                Outcome::Failed(w) => ("FAILED", w.clone()),
            };
            table.push(vec![what.to_string(), n.clone(), why]);
        }
        let removed_of = |kind: &str| {
            outcomes
                .iter()
                .filter(|(_, k, o)| *k == kind && matches!(o, Outcome::Removed))
                .count()
        };
        out(&format!(
            "{}{} {}, {} in /dev/shm looked at\n",
            render::columns(&table),
            arenas_and_segments(removed_of("arena"), removed_of("segment"), "orphaned "),
            if dry_run {
                "would be removed"
            } else {
                "removed"
            },
            arenas_and_segments(rows.len(), segments.len(), ""),
        ))?;
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `1 orphaned arena`, `2 orphaned arenas and 1 orphaned segment`, `0 arenas`: the
/// segments are named only when there are some.
fn arenas_and_segments(arenas: usize, segments: usize, adjective: &str) -> String {
    let n =
        |n: usize, what: &str| format!("{n} {adjective}{what}{}", if n == 1 { "" } else { "s" });
    if segments == 0 {
        n(arenas, "arena")
    } else if arenas == 0 {
        n(segments, "segment")
    } else {
        format!("{} and {}", n(arenas, "arena"), n(segments, "segment"))
    }
}

/// Removes the orphaned segment `name`, after looking once more (a process may have
/// mapped it since the listing, or the name may now be another file).
fn remove_segment(name: &str) -> Outcome {
    let seg = match discover::named_kind(name) {
        Some(discover::Kind::Segment(seg)) => seg,
        Some(discover::Kind::Arena(_)) => {
            return Outcome::Skipped("it is an arena now (made again since)".into())
        }
        None => return Outcome::Failed("it went away".into()),
    };
    let s = ListedSegment {
        attached: Mappers::scan().of(seg.key),
        seg,
    };
    if !s.orphan() {
        return Outcome::Kept(s.kept_because());
    }
    match shmproc::shared::SharedMemory::unlink_name(name) {
        Ok(()) => Outcome::Removed,
        Err(e) => Outcome::Failed(render::brief(&e)),
    }
}

/// Why an arena that is not an orphan is kept.
fn in_use(r: &Listed) -> String {
    let Ok(s) = &r.snapshot else {
        return String::new();
    };
    let mut why = Vec::new();
    if s.creator.alive {
        why.push(format!("its creator {} is alive", s.creator.pid));
    }
    let live: Vec<String> = s
        .processes
        .iter()
        .filter(|p| p.pid.alive && p.objects > 0)
        .map(|p| p.pid.pid.to_string())
        .collect();
    if !live.is_empty() {
        why.push(format!("process {} holds objects in it", live.join(", ")));
    }
    if !r.attached.is_empty() {
        let pids: Vec<String> = r.attached.iter().map(u32::to_string).collect();
        why.push(format!("process {} maps it", pids.join(", ")));
    }
    format!("in use: {}", why.join("; "))
}

/// Removes the orphan `name`, after looking once more (a process may have attached since
/// the listing).
fn remove(name: &str) -> Outcome {
    let again = Found {
        label: name.to_string(),
        name: Some(name.to_string()),
        path: Path::new("/dev/shm").join(name),
        key: match std::fs::symlink_metadata(Path::new("/dev/shm").join(name)) {
            Ok(m) => {
                use std::os::unix::fs::MetadataExt;
                (
                    rustix::fs::major(m.dev()),
                    rustix::fs::minor(m.dev()),
                    m.ino(),
                )
            }
            Err(e) => return Outcome::Failed(format!("it went away: {e}")),
        },
        fd_holders: BTreeSet::new(),
    };
    let r = listed(again, &Mappers::scan());
    if !r.orphan() {
        return Outcome::Kept(in_use(&r));
    }
    match shmproc::Arena::unlink_name(name) {
        Ok(()) => Outcome::Removed,
        Err(e) => Outcome::Failed(render::brief(&e)),
    }
}
