#!/usr/bin/env bash
# Re-plants every bug of docs/planted-bugs.md in src/, one at a time, runs the check that
# must catch it, and reverts (git checkout -- src/). Nothing is committed.
#
#   scripts/replant.sh              every bug, each against the model / test of the table
#   scripts/replant.sh L1 Q5 S10    only these bugs
#   scripts/replant.sh --list       the ids and what each plants
#   scripts/replant.sh --baseline   the same checks without planting (each must pass)
#   scripts/replant.sh --dry        plants each bug and reverts, runs nothing: do the
#                                   edits still apply to the code as it is now?
#   REPLANT_SCOPE=file scripts/replant.sh ...
#                                   loom bugs against every model of their test file, to
#                                   see which models catch them (slower)
#
# A bug is CAUGHT when its check fails (loom: deadlock, causality violation, or a failed
# assertion; tests: a failed test). MISSED when the check passes with the bug planted.
# NOT-PLANTED when the text to change is no longer found exactly once (the code moved:
# update the entry), BUILD-FAILED when the planted code does not compile (update the
# entry), NO-TEST when the check's name matches no test, TIMEOUT past REPLANT_TIMEOUT
# seconds (default 1800). Exit status 1 when any bug is anything but CAUGHT.
#
# Refuses to run with uncommitted changes in src/. Honours CARGO_TARGET_DIR (loom builds
# go to <target>/loom, as in scripts/test-all.sh); each check's output is kept in
# <target>/replant/<ID>.log. Run it niced on a shared machine:
#   nice -n 10 scripts/replant.sh
set -uo pipefail

if [ -n "${CARGO_TARGET_DIR:-}" ] && [ "${CARGO_TARGET_DIR#/}" = "$CARGO_TARGET_DIR" ]; then
  CARGO_TARGET_DIR="$PWD/$CARGO_TARGET_DIR"
fi
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TARGET_DIR="$target"
log_dir="$target/replant"
mkdir -p "$log_dir"
scope="${REPLANT_SCOPE:-model}"
# A planted bug can make a model explore for a long time before it fails; past this it
# is reported as TIMEOUT (not caught).
limit="${REPLANT_TIMEOUT:-1800}"

# ---------------------------------------------------------------------------------------
# The bugs. One `bug` line each, then one or more `edit FILE OLD NEW` (OLD must occur
# exactly once in FILE; it is replaced by NEW), then one `check`:
#   check loom FILE MODEL   loom-tests/tests/FILE.rs, model MODEL
#   check lib PATH          a unit test of the library (full path, --exact)
#   check tests FILE [NAME] tests/FILE.rs (a multi-process test file), every test or
#                           those whose name contains NAME
# The loom build denies warnings, so a plant must leave nothing unused: where removing
# a line would orphan a variable or a function, the entries below disable it with
# `|| true` / `&& false` instead.

define() {
  # ---- raw::lock -----------------------------------------------------------------------
  bug L1 "lock: the slow path takes the lock without the WAITERS bit"
  edit src/raw/lock.rs 'who.me() | WAITERS | v,' 'who.me() | v,'
  check loom lock mutual_exclusion_and_no_lost_wakeup

  bug L2 "lock: a Relaxed unlock swap"
  edit src/raw/lock.rs 'self.word.swap(0, Ordering::AcqRel)' 'self.word.swap(0, Ordering::Relaxed)'
  check loom lock mutual_exclusion_and_no_lost_wakeup

  bug L3 "lock: the recorded identity trusted without its pid (a stale start time read as pid reuse)"
  edit src/raw/lock.rs 'if recorded >> IDENT_PID_SHIFT == u64::from(holder) {' \
    'if recorded >> IDENT_PID_SHIFT == u64::from(holder) || true {'
  check loom lock stale_identity_is_no_evidence_of_death

  # ---- raw::mpmc (the queue ring) ------------------------------------------------------
  bug Q2 "queue: a Relaxed publish"
  edit src/raw/mpmc.rs $'before the consumer\'s reads.\n        s.stamp(claim.index).store(claim.stamp, Ordering::Release);' \
    $'before the consumer\'s reads.\n        s.stamp(claim.index).store(claim.stamp, Ordering::Relaxed);'
  check loom queue mpmc_two_by_two

  bug Q3 "queue: a party waiting for the previous lap's claim sleeps instead of napping (was: no lap_seq wake)"
  edit src/raw/mpmc.rs $'            // The previous lap\'s party holds the slot: it claimed long ago.\n            _ => false,' \
    $'            // The previous lap\'s party holds the slot: it claimed long ago.\n            _ => true,'
  check loom queue spmc_one_message_then_close_wakes_both

  bug Q4 "queue: the consumer ignores the skip mark of a dropped put loan"
  edit src/raw/mpmc.rs 'skip: stamp != unmarked,' 'skip: false,'
  check loom queue skipped_slots_are_passed_over

  bug Q5 "queue: no SeqCst fence before the claimer's look at the waiter count (loom spelling of registered())"
  edit src/raw/mpmc.rs $'        fence(Ordering::SeqCst);\n        // Relaxed: ordered by the fence above.\n        Waiters::waiting(' \
    $'        // Relaxed: ordered by the fence above.\n        Waiters::waiting('
  check loom queue mpmc_two_by_two

  bug Q6 "queue: a waiter whose claim was already made sleeps instead of napping"
  edit src/raw/mpmc.rs 'let ahead = registered && self.claim_is_ahead(why, geo);' \
    'let ahead = registered && (self.claim_is_ahead(why, geo) || true);'
  check loom queue mpmc_two_by_two

  bug Q7 "queue: no SeqCst fence in the waiter between registering and looking (wait_for)"
  edit src/raw/mpmc.rs $'            // CAS of the other side, and with the fence in `close`.\n            fence(Ordering::SeqCst);\n' \
    $'            // CAS of the other side, and with the fence in `close`.\n'
  check loom queue mpmc_two_by_two

  bug Q8 "queue: the fast pop claims a slot not yet published"
  edit src/raw/mpmc.rs 'Side::Consumer => (&self.head.0, 1, one_lap, &self.wake.0.put_waiters),' \
    'Side::Consumer => (&self.head.0, 0, one_lap, &self.wake.0.put_waiters),'
  check loom queue spsc_blocking_wraps_in_order

  bug Q9 "queue: a waker skips its wake while a signal is out"
  edit src/raw/mpmc.rs '(Self::waiting(w) != 0 && Self::signalled(w) < Self::HALF)' \
    '(Self::waiting(w) != 0 && Self::signalled(w) == 0)'
  edit src/raw/mpmc.rs 'Err(w) => Self::waiting(w) != 0,' 'Err(_) => false,'
  check loom queue two_sleeping_consumers_two_messages

  bug Q10 "queue: signal computes w - WAITING eagerly (then_some): overflow with nobody waiting"
  edit src/raw/mpmc.rs '.then(|| w - Self::WAITING + Self::SIGNALLED)' \
    '.then_some(w - Self::WAITING + Self::SIGNALLED)'
  check lib queue::tests::a_waiter_that_left_before_the_publish_is_not_woken

  bug Q11 "queue: the fast claim takes the lap's last slot with pos + 1"
  edit src/raw/mpmc.rs 'if index >= cap.saturating_sub(1) {' 'if index >= cap {'
  check tests queue stress_4x4_million_exactly_once_in_order

  # ---- raw::spsc (the pipe ring) -------------------------------------------------------
  bug S3 "pipe: the chunk header stored Relaxed"
  edit src/raw/spsc.rs 'buf.store_word(tail, h, Ordering::Release);' 'buf.store_word(tail, h, Ordering::Relaxed);'
  check loom pipe frames_across_the_wrap

  bug S4 "pipe: no zero terminator after a chunk"
  edit src/raw/spsc.rs $'        buf.store_word(next, 0, Ordering::Relaxed);\n' ''
  check loom pipe message_larger_than_the_ring_streams

  bug S5 "pipe: the waker reads PEER with a plain load before its RMW (was: no fence in wake_consumer)"
  edit src/raw/lock.rs 'self.word.fetch_and(!USER_FLAG, Ordering::AcqRel) & USER_FLAG != 0' \
    '(self.word.load(Ordering::Acquire) & USER_FLAG != 0) && (self.word.fetch_and(!USER_FLAG, Ordering::AcqRel) & USER_FLAG != 0)'
  check loom pipe message_larger_than_the_ring_streams

  bug S7 "pipe: the release does not wake the peer that announced itself"
  edit src/raw/spsc.rs 'self.peer_evt(side).notify_all();
        }
    }

    /// The event count' 'let _ = self.peer_evt(side);
        }
    }

    /// The event count'
  check loom pipe straight_line_receive

  bug S8 "pipe: no wake of the consumer after each chunk of a streamed message"
  edit src/raw/spsc.rs $'            self.wake_peer(Side::Producer);\n' ''
  check loom pipe message_larger_than_the_ring_streams

  bug S9 "pipe: no wake of the producer after each chunk read"
  edit src/raw/spsc.rs $'            // Not left to the release: the producer may sleep until this room is free.\n            self.wake_peer(Side::Consumer);\n' \
    $'            // Not left to the release: the producer may sleep until this room is free.\n'
  check loom pipe message_larger_than_the_ring_streams

  bug S10 "pipe: the sleeper's announcement (set_user_flag) without its Acquire (Release)"
  edit src/raw/lock.rs 'self.word.fetch_or(USER_FLAG, Ordering::SeqCst);' 'self.word.fetch_or(USER_FLAG, Ordering::Release);'
  check loom pipe straight_line_receive

  bug S10r "pipe: the sleeper's announcement (set_user_flag) Relaxed"
  edit src/raw/lock.rs 'self.word.fetch_or(USER_FLAG, Ordering::SeqCst);' 'self.word.fetch_or(USER_FLAG, Ordering::Relaxed);'
  check loom pipe straight_line_receive

  bug S11 "pipe: prime zeroes the next line without the free-space check"
  edit src/raw/spsc.rs 'if ahead.wrapping_add(HEADER).wrapping_sub(head) <= buf.cap() {' \
    'if ahead.wrapping_add(HEADER).wrapping_sub(head) <= buf.cap() || true {'
  check tests pipe million_random_messages_checked

  bug S6 "pipe: the fast path's lock always succeeds (a lockless fast path)"
  edit src/pipe/handle.rs 'ring.lock(S::SIDE).try_lock(&Procfs).then(|| Held {' \
    '(ring.lock(S::SIDE).try_lock(&Procfs) || true).then(|| Held {'
  check lib pipe::tests::contended_ends_keep_every_message

  # ---- raw::condvar, raw::rlock, raw::barrier ------------------------------------------
  bug C1 "condition: a timed-out waiter does not leave its generation's count"
  edit src/raw/condvar.rs '} else if timed_out {
                    Self::set(
                        &self.g1_waiting,
                        Self::get(&self.g1_waiting).saturating_sub(1),
                    );
                    Some(false)' '} else if timed_out {
                    Some(false)'
  check loom condition a_timed_out_waiter_leaves_no_stale_wakeup

  bug C2 "condition: a newcomer joins G1 while G1 holds a pending notification (steal)"
  edit src/raw/condvar.rs 'if Self::get(&self.g1_signals) == 0 && Self::get(&self.g2_waiting) == 0 {' \
    'if Self::get(&self.g2_waiting) == 0 {'
  check loom condition a_late_waiter_cannot_steal

  bug C3 "condition: no rescue of notifications stranded on a dead waiter"
  edit src/raw/condvar.rs 'if g != g1.wrapping_add(1) || RawCondvar::get(&cv.g1_signals) == 0 {' \
    'if true || g != g1.wrapping_add(1) || RawCondvar::get(&cv.g1_signals) == 0 {'
  check loom condition a_grant_to_a_dead_waiter_reaches_a_live_one

  bug R1 "rlock: the owner key is not cleared at the last unlock"
  edit src/raw/rlock.rs $'        self.owner.store(0, Ordering::Relaxed);\n' ''
  check loom rlock a_sibling_thread_never_looks_like_the_owner

  bug R2 "rlock: ownership tested by pid alone"
  edit src/raw/rlock.rs 'self.lock.holder() == Some(who.me()) && self.owner.load(Ordering::Relaxed) == key(who)' \
    'self.lock.holder() == Some(who.me())'
  check loom rlock owner_is_a_thread_of_a_process

  bug B1 "barrier: the generation CAS in release is Relaxed"
  edit src/raw/barrier.rs '.compare_exchange_weak(w, next, Ordering::Release, Ordering::Relaxed)' \
    '.compare_exchange_weak(w, next, Ordering::Relaxed, Ordering::Relaxed)'
  check loom barrier three_parties_one_pass

  bug B1b "barrier: the generation load in await_release is Relaxed"
  edit src/raw/barrier.rs $'            // Acquire: pairs with the Release CAS in `release`.\n            let w = self.word.load(Ordering::Acquire);' \
    $'            // Acquire: pairs with the Release CAS in `release`.\n            let w = self.word.load(Ordering::Relaxed);'
  check loom barrier three_parties_one_pass

  bug B2 "barrier: a timeout breaks a pass whose action runs"
  edit src/raw/barrier.rs $'                if full {\n                    // The action is running: the pass completes; wait for it.' \
    $'                if full && false {\n                    // The action is running: the pass completes; wait for it.'
  edit src/raw/barrier.rs $'            (gen_of(w) == g && w & BROKEN == 0 && !self.full(arrivals, w, parties))\n                .then_some((w | BROKEN) & !SLEEPERS)\n        });\n        if broke {' \
    $'            (gen_of(w) == g && w & BROKEN == 0 && (!self.full(arrivals, w, parties) || true))\n                .then_some((w | BROKEN) & !SLEEPERS)\n        });\n        if broke {'
  check loom barrier a_timeout_breaks_it_for_everyone

  bug B3 "barrier: a waiter does not ask whether a recorded party died"
  edit src/raw/barrier.rs $'                let (pid, start) = Self::party(a, t);\n                who.is_dead(pid, start)\n            } else if' \
    $'                let (pid, start) = Self::party(a, t);\n                who.is_dead(pid, start) && false\n            } else if'
  edit src/raw/barrier.rs 'dead |= who.is_dead(pid, start);' 'dead |= who.is_dead(pid, start) && false;'
  check loom barrier a_recorded_party_dies_of_two

  bug B4 "barrier: the release does not wake the sleepers"
  edit src/raw/barrier.rs '                    if w & SLEEPERS != 0 {
                        futex::wake_all(&self.word);
                    }
                    return;' '                    return;'
  check loom barrier three_parties_one_pass

  # ---- raw::event, raw::semaphore: no planted bug on record; these two are new -----------
  bug E1 "event: set does not wake the announced waiters (new: none on record for Event)"
  edit src/raw/event.rs $'        if v & WAITERS != 0 {\n            futex::wake_all(&self.word)' \
    $'        if v & WAITERS != 0 && false {\n            futex::wake_all(&self.word)'
  check loom event set_wakes_two_waiters

  bug M1 "semaphore: the waiter's re-check is a load, not the RMW that orders it (new: none on record)"
  edit src/raw/semaphore.rs 'let v = self.value.fetch_add(0, Ordering::AcqRel);' \
    'let v = self.value.load(Ordering::Acquire);'
  check loom semaphore two_sleepers_two_releases

  # ---- raw::dict (SharedDict's seqlock) -------------------------------------------------
  bug D1 "dict: no Acquire fence in the reader"
  edit src/raw/dict/mod.rs $'                fence(Ordering::Acquire);\n' ''
  check loom dict reader_never_sees_a_replaced_value_torn_or_reused

  bug D2 "dict: no Release fence in the writer"
  edit src/raw/dict/mod.rs $'        fence(Ordering::Release);\n' ''
  check loom dict reader_never_sees_a_replaced_value_torn_or_reused

  # ---- raw::heap -----------------------------------------------------------------------
  bug H1 "heap: the repair after a dead holder is skipped"
  edit src/raw/heap.rs $'                    op.repair(how == Acquired::OwnerDied)?;\n                } else if' \
    $'                    let _ = &op;\n                } else if'
  check loom heap killed_in_alloc_is_recovered

  bug H2 "heap: alloc does not unlink the block it hands out"
  edit src/raw/heap.rs '(false, true) => self.relist(ul, b, a + n, t)?,
            (false, false) => self.apply_unlink(ul)?,' '(false, true) => self.insert(a + n, t)?,
            (false, false) => {}'
  check loom heap two_allocators_get_disjoint_blocks

  bug H3 "heap: the lock is released before the critical section"
  edit src/raw/heap.rs '        let out = self.state.with_mut(|p| {' '        if hook.allow() {
            self.lock.unlock();
        }
        let out = self.state.with_mut(|p| {'
  edit src/raw/heap.rs '        if hook.allow() {
            self.lock.unlock();
        }
        out
' '        out
'
  check loom heap two_allocators_get_disjoint_blocks

  # ---- sync::futex / wait --------------------------------------------------------------
  bug W1 "wait: notify_all passes u32::MAX to futex_wake (the kernel's -1: wakes one)"
  edit src/sync/futex.rs 'imp::wake(word, n.min(i32::MAX as u32))' 'imp::wake(word, n)'
  check lib raw::sync::wait::tests::notify_all_wakes_every_sleeper

  bug W2 "wait: EventCount::key Relaxed (new: the event count's ordering, now written once)"
  edit src/sync/wait.rs 'self.0.load(Ordering::SeqCst)' 'self.0.load(Ordering::Relaxed)'
  check loom pipe close_wakes_the_consumer

  bug W3 "wait: EventCount::notify bumps Relaxed (new, as W2)"
  edit src/sync/wait.rs 'self.0.fetch_add(1, Ordering::SeqCst);' 'self.0.fetch_add(1, Ordering::Relaxed);'
  check loom pipe close_wakes_the_consumer

  # ---- arena ---------------------------------------------------------------------------
  # A1 / A2 (a bump allocator's mark read before the directory entries it bounds) were
  # retired with the bump allocator (Arena v7); the order they broke (a bound published
  # after what it bounds) is now raw::extent's: X1 / X2.
  bug X1 "extent: the published size stored Relaxed"
  edit src/raw/extent.rs 'self.size.store(size, Ordering::Release);' 'self.size.store(size, Ordering::Relaxed);'
  check loom extent an_offset_received_after_a_growth_is_accessible

  bug X2 "extent: the published size read Relaxed"
  edit src/raw/extent.rs 'self.size.load(Ordering::Acquire)' 'self.size.load(Ordering::Relaxed)'
  check loom extent an_offset_received_after_a_growth_is_accessible

  # ---- process -------------------------------------------------------------------------
  bug P1 "process: a daemon does not ask for the parent-death signal"
  edit src/process/mod.rs 'let armed = rustix::process::set_parent_process_death_signal(Some(Signal::KILL)).is_ok();' \
    'let armed = true;'
  check tests process daemon_dies_when_parent_is_sigkilled

  bug P2 "process: the exit hook does nothing"
  edit src/process/registry.rs $'extern "C" fn at_exit() {\n    cleanup_children();\n}' $'extern "C" fn at_exit() {}'
  check tests process exit_hook_joins_children_and_terminates_daemons
}

# ---------------------------------------------------------------------------------------
# The machinery.

ids=() descs=() edits=() checks=()
cur=-1
bug() { cur=$((cur + 1)); ids[cur]="$1"; descs[cur]="$2"; edits[cur]=""; checks[cur]=""; }
# Edits are kept as FILE OLD NEW triples (unit separator between fields, record
# separator after each).
edit() { edits[cur]+="$1"$'\x1f'"$2"$'\x1f'"$3"$'\x1e'; }
check() { checks[cur]="$*"; }
define

apply_edits() { # index
  local rec file old new
  while IFS= read -r -d $'\x1e' rec; do
    file="${rec%%$'\x1f'*}"; rec="${rec#*$'\x1f'}"
    old="${rec%%$'\x1f'*}"; new="${rec#*$'\x1f'}"
    OLD="$old" NEW="$new" perl -0777 -i -pe \
      'BEGIN { $n = 0 } $n += s/\Q$ENV{OLD}\E/$ENV{NEW}/g; END { exit($n == 1 ? 0 : 3) }' "$file" ||
      { echo "    not found exactly once in $file: $old" | head -n 3; return 1; }
  done <<<"${edits[$1]}"
  return 0
}

preemptions="${LOOM_MAX_PREEMPTIONS:-3}"

# How a failed check failed, from its output.
how() {
  local f="$1" what
  if grep -q "deadlock; threads" "$f"; then what="deadlock"
  elif grep -q "Causality violation" "$f"; then
    what="causality violation ($(grep -o 'Causality violation: [^.]*' "$f" | head -n 1 | cut -c 22-))"
  elif grep -q "Model exceeded maximum number of branches" "$f"; then what="max branches"
  else
    what=$(grep -A1 "panicked at" "$f" | grep -v "panicked at\|^--" | head -n 1 | cut -c 1-110)
    if [ -n "$what" ]; then what="assertion: $what"; else what="failed (see the log)"; fi
  fi
  echo "$what"
}

now() { date +%s.%N; }
since() { printf '%.1f' "$(echo "$(now) - $1" | bc)"; }

# Runs the check of bug $1 (planted or not) and sets `result`, `detail`, `secs`.
run_check() {
  local i="$1" log="$2" kind a b bin start rc t caught=() passed=() line
  read -r kind a b <<<"${checks[i]}"
  case "$kind" in
    loom)
      bin=$(env RUSTFLAGS="--cfg shmproc_loom -D warnings" CARGO_TARGET_DIR="$target/loom" \
        cargo test -p loom-tests --release --test "$a" --no-run --message-format=json 2>"$log" |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
      if [ -z "$bin" ]; then
        # The JSON went to the pipe: build again for the compiler's own words.
        env RUSTFLAGS="--cfg shmproc_loom -D warnings" CARGO_TARGET_DIR="$target/loom" \
          cargo test -p loom-tests --release --test "$a" --no-run >>"$log" 2>&1
        result="BUILD-FAILED"; detail="$log"; secs=0; return
      fi
      if [ "$scope" = file ]; then
        # Every model of the file on its own (a deadlock aborts the whole test binary).
        secs=0
        for t in $("$bin" --list 2>/dev/null | sed -n 's/: test$//p'); do
          start=$(now)
          # (In braces with stderr closed: no "Aborted" from the shell when loom aborts.)
          { LOOM_MAX_PREEMPTIONS="$preemptions" timeout "$limit" "$bin" --exact "$t" \
            --test-threads=1 >"$log.$t" 2>&1; } 2>/dev/null
          rc=$?
          line="$(printf '%-50s %6s s' "$t" "$(since "$start")")"
          if [ "$rc" = 0 ]; then passed+=("$t"); echo "      $line  passes"
          elif [ "$rc" = 124 ]; then echo "      $line  TIMEOUT"
          else caught+=("$t"); echo "      $line  fails: $(how "$log.$t")"
          fi
          [ "$t" = "$b" ] && { secs=$(since "$start"); cp "$log.$t" "$log"; }
        done
        if ! "$bin" --list 2>/dev/null | grep -qx "$b: test"; then
          result="NO-TEST"; detail="no model $b in $a"
        elif printf '%s\n' "${caught[@]}" | grep -qx "$b"; then
          result="CAUGHT"; detail="$(how "$log"); caught by ${#caught[@]} of $((${#caught[@]} + ${#passed[@]})) models"
        else
          result="MISSED"; detail="by $b; caught by: ${caught[*]:-none}"
        fi
        if [ "$mode" = baseline ] && [ "$result" != NO-TEST ]; then
          if [ ${#caught[@]} = 0 ]; then result="PASSES"; detail="every model of $a"
          else result="FAILS-UNPLANTED"; detail="${caught[*]}"; fi
        fi
        return
      fi
      start=$(now)
      { LOOM_MAX_PREEMPTIONS="$preemptions" timeout "$limit" "$bin" --exact "$b" --test-threads=1 \
        >>"$log" 2>&1; } 2>/dev/null
      rc=$? ;;
    lib|tests)
      local sel=(--lib) args=(--exact "$a")
      [ "$kind" = tests ] && { sel=(--test "$a"); args=(${b:+"$b"}); }
      if ! cargo test -q --all-features "${sel[@]}" --no-run >"$log" 2>&1; then
        result="BUILD-FAILED"; detail="$log"; secs=0; return
      fi
      start=$(now)
      timeout "$limit" cargo test -q --all-features "${sel[@]}" -- "${args[@]}" >>"$log" 2>&1
      rc=$? ;;
  esac
  secs=$(since "$start")
  if ! grep -q '^running [1-9]' "$log"; then result="NO-TEST"; detail="the check ran no test: fix its name"
  elif [ "$rc" = 124 ]; then result="TIMEOUT"; detail="after $limit s"
  elif [ "$mode" = baseline ]; then
    if [ "$rc" = 0 ]; then result="PASSES"; detail=""; else result="FAILS-UNPLANTED"; detail="$(how "$log")"; fi
  elif [ "$rc" = 0 ]; then result="MISSED"; detail=""
  else
    result="CAUGHT"; detail="$(how "$log")"
    # The multi-process harness and libtest both list the failed tests.
    local failed
    failed=$(sed -n '/^failures:$/,/^test result/p' "$log" | grep -E '^    [a-z_0-9:]+$' | sed 's/^ *//' |
      sort -u | tr '\n' ' ')
    [ -n "$failed" ] && detail="$detail [failed: ${failed% }]"
  fi
}

git diff --quiet -- src/ || { echo "src/ has uncommitted changes; commit or stash them first" >&2; exit 2; }
trap 'git checkout -q -- src/' EXIT
trap 'exit 130' INT TERM

mode=plant
want=()
for arg in "$@"; do
  case "$arg" in
    --list) for i in "${!ids[@]}"; do printf '%-5s %-70s %s\n' "${ids[i]}" "${descs[i]}" "${checks[i]}"; done; exit 0 ;;
    --baseline) mode=baseline ;;
    --dry) mode=dry ;;
    *) want+=("$arg") ;;
  esac
done

for w in "${want[@]}"; do
  printf '%s\n' "${ids[@]}" | grep -qx -- "$w" || { echo "no bug $w (see --list)" >&2; exit 2; }
done

status=0
summary=()
for i in "${!ids[@]}"; do
  id="${ids[i]}"
  if [ ${#want[@]} -gt 0 ] && ! printf '%s\n' "${want[@]}" | grep -qx "$id"; then continue; fi
  log="$log_dir/$id.log"
  printf '==> %s: %s\n    check: %s\n' "$id" "${descs[i]}" "${checks[i]}"
  git checkout -q -- src/
  if [ "$mode" != baseline ] && ! apply_edits "$i"; then
    result="NOT-PLANTED"; detail=""; secs=0
  elif [ "$mode" = dry ]; then
    result="PLANTS"; detail="$(git diff --shortstat -- src/ | sed 's/^ //')"; secs=0
  else
    run_check "$i" "$log"
  fi
  git checkout -q -- src/
  printf '    %s in %s s: %s\n' "$result" "$secs" "$detail"
  summary+=("$(printf '%-5s %-12s %7s s  %s' "$id" "$result" "$secs" "$detail")")
  case "$result" in CAUGHT|PASSES|PLANTS) ;; *) status=1 ;; esac
done

printf '\n==> summary (%s; scope %s; LOOM_MAX_PREEMPTIONS=%s; logs in %s)\n' "$mode" "$scope" "$preemptions" "$log_dir"
printf '%s\n' "${summary[@]}"
exit $status
