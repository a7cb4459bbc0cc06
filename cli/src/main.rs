//! `shmproc`: see and clean up what shmproc programs keep in shared memory.
//!
//! ```text
//! shmproc ls                      every arena on this machine
//! shmproc inspect jobs            one arena: figures, processes, every object's state
//! shmproc inspect pid:4242        the anonymous arena of process 4242
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
use render::Listed;
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
named arenas that crashed programs left behind.

It only reads: every arena is read through a private copy, without taking its locks, so
looking never disturbs the programs, and a stuck or damaged arena cannot make the tool
hang or crash.";

const EXIT_CODES: &str = "\
Exit status:
  0  done
  1  failed: the arena could not be read (no such arena, not an arena, permission
     denied), or an arena could not be removed
  2  the command line is wrong (see --help)
  3  done, but damage was found: `inspect` lists it under \"problems\" (or DAMAGED in an
     object's state), `ls` as \"damaged\"";

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
    /// List every shmproc arena on this machine: the named ones in /dev/shm and the
    /// anonymous ones of running processes.
    #[command(after_help = EXIT_CODES, long_about = "\
List every shmproc arena on this machine: the named ones in /dev/shm, and the anonymous
ones that running processes of this user have open (shown as /proc/<pid>/fd/<n>, a path
`shmproc inspect` takes).

Columns: SIZE is the arena's file now (it grows up to its limit), USED the bytes its
objects take, ATTACHED the live processes that map it (or hold objects in it), CREATOR the
process that made it (\"(dead)\" once it is gone), AGE the time since it was made. A
named arena whose creator is gone and that no live process uses is an orphan:
`shmproc clean` removes it.")]
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
    /// Remove the named arenas that crashed programs left in /dev/shm: those whose
    /// creator is gone and that no live process uses.
    #[command(after_help = EXIT_CODES, long_about = "\
Remove the named arenas that crashed (or careless) programs left in /dev/shm: those whose
creator is gone, in which no live process holds an object, and that no live process
maps (a process that has the arena open maps it, whether it holds objects or not). An
arena a live process uses is never removed, nor one that cannot be read (it is listed as
skipped, with the reason). Processes that still have a removed arena mapped keep it (as
with any deleted file).

Anonymous arenas need no cleaning: they vanish with the last process that has them.")]
    Clean {
        /// Remove them (without it, only say what would be removed).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
        /// Only these arenas (names in /dev/shm); by default every arena there.
        #[arg(value_name = "NAME")]
        names: Vec<String>,
    },
}

/// A failure to report, and the exit status for it.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
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
        Err(Failure(msg)) => {
            let _ = std::io::stdout().flush();
            eprintln!("shmproc: error: {msg}");
            ExitCode::from(1)
        }
    }
}

/// Exit status 3: done, damage found.
const DAMAGED: u8 = 3;

fn print_json(j: &serde_json::Value) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, j)?;
    writeln!(out)?;
    Ok(())
}

/// Every arena found (the named ones in `only`, if not empty), each with its snapshot and
/// the live processes attached.
fn listing(named_only: bool, only: &[String]) -> Result<Vec<Listed>, Failure> {
    let mut found = discover::named()
        .map_err(|e| format!("cannot list /dev/shm: {e} (is /dev/shm mounted?)"))?;
    if !named_only {
        found.extend(discover::anonymous());
    }
    if !only.is_empty() {
        found.retain(|f| f.name.as_ref().is_some_and(|n| only.contains(n)));
    }
    let maps = Mappers::scan();
    Ok(found.into_iter().map(|f| listed(f, &maps)).collect())
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
    let rows = listing(named_only, &[])?;
    if json {
        print_json(&render::ls_json(&rows))?;
    } else {
        print!("{}", render::ls_text(&rows));
    }
    let damaged = rows
        .iter()
        .any(|r| r.snapshot.as_ref().is_ok_and(render::damaged));
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
            return Err(Failure(format!("no process {pid} is running")));
        }
        let found = discover::anonymous_of_pid(pid);
        return match found.as_slice() {
            [] => Err(Failure(format!(
                "process {pid} has no anonymous shmproc arena open (or it belongs to another \
                 user): `shmproc ls` lists the arenas"
            ))),
            [one] => Ok((Target::Path(one.path.clone()), Some(one.key))),
            many => Err(Failure(format!(
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
        shmproc::Error::NoSuchArena(_) => Failure(match t {
            Target::Named(n) => format!(
                "no arena named {n:?} in /dev/shm: `shmproc ls` lists the arenas (an anonymous \
                 one is named by its process: pid:<pid>)"
            ),
            Target::Path(p) => format!("{} does not exist", p.display()),
        }),
        shmproc::Error::NotAnArena => Failure(format!(
            "{arena} is not a shmproc arena (no shmproc header)"
        )),
        e => Failure(format!("{arena}: {e}")),
    })
}

/// The live processes that map or hold open the arena of `s` (from `/proc`).
fn attached(s: &Snapshot, t: &Target, key: Option<discover::FileKey>) -> BTreeSet<u32> {
    let key = key.or_else(|| {
        use std::os::unix::fs::MetadataExt;
        let path = match t {
            Target::Named(n) => Path::new("/dev/shm").join(n),
            Target::Path(p) => p.clone(),
        };
        let m = std::fs::metadata(path).ok()?;
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
    let Some(every) = watch else {
        let s = take(&t, arena)?;
        let pids = attached(&s, &t, key);
        if json {
            print_json(&render::inspect_json(&s, &pids))?;
        } else {
            print!("{}", render::inspect_text(&s, &pids));
        }
        return Ok(if render::damaged(&s) {
            ExitCode::from(DAMAGED)
        } else {
            ExitCode::SUCCESS
        });
    };
    if !every.is_finite() || every < 0.0 {
        return Err(Failure(format!(
            "--watch takes a number of seconds, not {every}"
        )));
    }
    let every = Duration::from_secs_f64(every.max(0.05));
    let tty = std::io::stdout().is_terminal();
    let mut n = 0u64;
    let code = loop {
        n += 1;
        let frame = take(&t, arena);
        let mut out = std::io::stdout().lock();
        if json {
            // One document per line, for a consumer that reads line by line.
            match &frame {
                Ok(s) => {
                    serde_json::to_writer(
                        &mut out,
                        &render::inspect_json(s, &attached(s, &t, key)),
                    )?;
                }
                Err(Failure(e)) => {
                    serde_json::to_writer(&mut out, &serde_json::json!({ "error": e }))?
                }
            }
            writeln!(out)?;
        } else {
            if tty {
                // Home and clear: the frame replaces the last one.
                write!(out, "\x1b[H\x1b[2J")?;
            } else if n > 1 {
                writeln!(out)?;
            }
            writeln!(
                out,
                "shmproc inspect {arena}: every {:.1} s, refresh {n}{} (Ctrl-C stops)\n",
                every.as_secs_f64(),
                count.map(|c| format!(" of {c}")).unwrap_or_default()
            )?;
            match &frame {
                Ok(s) => write!(out, "{}", render::inspect_text(s, &attached(s, &t, key)))?,
                Err(Failure(e)) => writeln!(out, "error: {e}")?,
            }
        }
        out.flush()?;
        drop(out);
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
    let rows = listing(true, only)?;
    let mut outcomes = Vec::new();
    if !only.is_empty() {
        for n in only {
            if !rows.iter().any(|r| r.name.as_ref() == Some(n)) {
                outcomes.push((
                    n.clone(),
                    Outcome::Skipped("no shmproc arena of that name in /dev/shm".into()),
                ));
            }
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
        outcomes.push((name, outcome));
    }
    let failed = outcomes
        .iter()
        .any(|(_, o)| matches!(o, Outcome::Failed(_)));
    if json {
        let pick = |f: fn(&Outcome) -> Option<&str>| {
            outcomes
                .iter()
                .filter_map(|(n, o)| {
                    f(o).map(|why| serde_json::json!({ "name": n, "reason": why }))
                })
                .collect::<Vec<_>>()
        };
        print_json(&serde_json::json!({
            "dry_run": dry_run,
            "removed": outcomes.iter().filter(|(_, o)| matches!(o, Outcome::Removed)).map(|(n, _)| n).collect::<Vec<_>>(),
            "kept": pick(|o| if let Outcome::Kept(w) = o { Some(w) } else { None }),
            "skipped": pick(|o| if let Outcome::Skipped(w) = o { Some(w) } else { None }),
            "failed": pick(|o| if let Outcome::Failed(w) = o { Some(w) } else { None }),
        }))?;
    } else {
        let removed = if dry_run { "would remove" } else { "removed" };
        let mut table = Vec::new();
        for (n, o) in &outcomes {
            let (what, why) = match o {
                Outcome::Removed => (
                    removed,
                    "orphan: its creator is gone, no live process uses it".to_string(),
                ),
                Outcome::Kept(w) => ("kept", w.clone()),
                Outcome::Skipped(w) => ("skipped", w.clone()),
                Outcome::Failed(w) => ("FAILED", w.clone()),
            };
            table.push(vec![what.to_string(), n.clone(), why]);
        }
        print!("{}", render::columns(&table));
        let n = outcomes
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Removed))
            .count();
        println!(
            "{n} orphaned arena{} {}, {} arena{} in /dev/shm looked at",
            if n == 1 { "" } else { "s" },
            if dry_run {
                "would be removed"
            } else {
                "removed"
            },
            outcomes.len(),
            if outcomes.len() == 1 { "" } else { "s" }
        );
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
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
