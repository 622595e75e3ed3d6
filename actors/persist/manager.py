"""``Persistence``: a node's snapshots and append-only log, driven by its store actor.

Sans-IO: fed the keyspace, the wall time and the monotonic clock by the
:class:`~actors.store.actor.Store` (the only actor that touches the keyspace); writes only
through the host's :class:`~actors.kernel.disk.Disk` port. What the store calls:

- :meth:`load` once, in its first turn, before it answers anything: the snapshot, then
  the logs of its generation and later (:mod:`actors.persist.aof`);
- :meth:`end_turn` after every turn, before the turn's replies go out: the turn's
  changed keys become one log block, written, and fsynced by ``appendfsync``'s rule;
- :meth:`start_save`, :meth:`save_slice` until done, then :meth:`finish_save`: a
  snapshot in budgeted slices (:mod:`actors.persist.snapshot`), installed atomically
  (temporary file, fsync, rename, fsync of the directory: ``Disk.install``);
- :meth:`due` every second: whether a ``--save`` rule or the log-rewrite threshold asks
  for a snapshot now.

A damaged snapshot is reported, moved aside (``dump.acs.corrupt-N``) and not loaded: the
node starts empty (a cluster node then warms from its peers); the logs of changes since
it are moved aside too (``.orphaned-N``): replayed alone they would make a state the node
never had. A damaged log: see :mod:`actors.persist.aof`.

Disk data older than the tombstone lifetime is not loaded in a cluster (when the saved
``tombstone_ttl`` is positive): a delete made after the data was written may have had its
tombstone purged on every peer, and the old value would come back (docs/consistency.md).
The age is measured from when the data was last known *current*: the newest of its own
times and the store's "alive" mark (:mod:`actors.persist.alive`), rewritten while the node
is ready, so an idle cluster that crashes as a whole still loads its data.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable

from actors.kernel.disk import Disk, DiskError
from actors.persist.alive import ALIVE, AliveMark, read_mark, write_mark
from actors.persist.aof import LogCorrupt, log_block, log_gen, log_name, log_start, read_log
from actors.persist.blocks import FileError
from actors.persist.records import stored_record
from actors.persist.snapshot import SnapshotCapture, read_snapshot
from actors.persist.tap import Tap
from actors.store.keyspace import Keyspace

__all__ = ["APPENDFSYNC", "PersistConfig", "Persistence", "SNAPSHOT", "SaveRefused"]

logger = logging.getLogger("actorcache.persist")

SNAPSHOT = "dump.acs"
_TMP = SNAPSHOT + ".tmp"
APPENDFSYNC = ("always", "everysec", "no")
#: A snapshot being written is fsynced in the background each time this much more of it
#: was appended (Redis's ``rdb-save-incremental-fsync``: 4 MB), so that the final fsync
#: has little left to flush. Not per slice: each fsync wakes a thread that competes with
#: the event loop for the CPU and the GIL (0.1-5.5 ms measured on the loop per call).
SYNC_EVERY_BYTES = 4 << 20
#: After a failed background save, the next one by rule waits this long (Redis: 5 s).
RETRY_AFTER_S = 5.0


class SaveRefused(Exception):
    """SAVE/BGSAVE while a snapshot is already being written (Redis's words)."""


@dataclass(frozen=True, slots=True)
class PersistConfig:
    #: ``(seconds, changes)``: snapshot when at least ``changes`` changes and ``seconds`` passed.
    save: tuple[tuple[int, int], ...] = ()
    appendonly: bool = False
    appendfsync: str = "everysec"
    rewrite_percentage: int = 100
    rewrite_min_size: int = 64 << 20
    #: Time budget of one snapshot slice (the clock is read after each block, so a slice
    #: runs up to a block longer: ~0.7-0.9 ms measured).
    slice_budget_s: float = 0.0005
    #: The store pauses between slices as long as the slice took, and at least this long:
    #: the slices take at most half the node's time, and clients' batches get in between.
    slice_pause_s: float = 0.001


class Persistence:
    def __init__(self, disk: Disk, config: PersistConfig, keyspace: Keyspace, node_id: str) -> None:
        self.disk = disk
        self.config = config
        self.node_id = node_id
        self.tap = Tap(keyspace, config.appendonly)
        keyspace.tap = self.tap
        self.gen = 0
        self.capture: SnapshotCapture | None = None
        #: The header of a captured snapshot whose background install is under way.
        self._installing: dict[str, Any] | None = None
        #: Snapshot bytes appended since the last incremental fsync.
        self._unsynced_bytes = 0
        #: What the current or last snapshot cost the store's turns (measured by the store
        #: on its clock): its first turn, listing the keys (Redis's ``latest_fork_usec``
        #: measures its fork, the same moment), and its longest slice.
        self.start_took_s = 0.0
        self.slice_max_s = 0.0
        self.last_save = 0.0
        self.last_status = "ok"
        self._retry_at = 0.0
        self._last_sync = 0.0
        self._unsynced = False
        self._snapshot_size = 0
        self.saves = 0
        self.loaded_keys = 0
        #: Wall time of the last current "alive" mark written (-inf: none this run).
        self._marked = -math.inf

    # --- loading ------------------------------------------------------------------

    def load(self, keyspace: Keyspace, wall: float) -> str:
        """Fill ``keyspace`` from the data directory; a line saying what was loaded.
        Raises :class:`~actors.persist.aof.LogCorrupt` (the node must not start)."""
        disk = self.disk
        names = disk.names()
        header: dict[str, Any] = {}
        records: list[Any] = []
        said = []
        if SNAPSHOT in names:
            data = disk.read(SNAPSHOT) or b""
            try:
                header, records = read_snapshot(data)
                said.append(f"snapshot {len(records)} records")
                self._snapshot_size = len(data)
                self.last_save = float(header.get("saved_at", 0.0))
            except FileError as exc:
                aside = disk.move_aside(SNAPSHOT, ".corrupt")
                logger.error("snapshot %s is damaged (%s): moved aside to %s, not loaded", SNAPSHOT, exc, aside)
                said.append(f"snapshot damaged ({exc}), moved aside to {aside}")
                header, records = {}, []
        data_wall = float(header.get("saved_at", 0.0))
        ttl = float(header.get("tombstone_ttl", 0.0) or 0.0)
        first_gen = int(header.get("aof_gen", 0))
        logs = sorted((g, n) for n in names if (g := log_gen(n)) is not None)
        based = bool(header) if SNAPSHOT in names else not logs or logs[0][0] <= 1
        if self.config.appendonly and not based:
            # Logs hold the changes since a snapshot that is gone or damaged: replayed alone
            # they would make a state the node never had. Start empty instead (as documented).
            for gen, name in logs:
                aside = disk.move_aside(name, ".orphaned")
                logger.error("%s holds changes since a snapshot that is missing or damaged: moved aside to %s", name, aside)
                said.append(f"{name} orphaned, moved aside to {aside}")
            logs = []  # the next log is generation 1 again: changes from an empty keyspace
        if self.config.appendonly:
            for gen, name in logs:
                if gen < first_gen:
                    continue
                data = disk.read(name) or b""
                read = read_log(data, name)  # raises LogCorrupt
                records.extend(read.records)
                if read.last_wall >= data_wall:
                    data_wall = read.last_wall
                    ttl = max(ttl, read.tombstone_ttl)
                said.append(f"{name} {len(read.records)} records")
                if read.torn is not None:
                    logger.warning("%s: torn last write (%s): truncated to %d bytes", name, read.torn, read.good_bytes)
                    said.append(f"torn tail truncated at {read.good_bytes}")
                    if read.good_bytes <= 0:
                        disk.remove(name)
                    else:
                        disk.truncate(name, read.good_bytes)
                self.gen = gen
        mark = read_mark(disk) if ALIVE in names else None
        if mark is not None:
            # Current: the node was ready and its disk held all it had until mark.at. Not
            # current: it loaded this data and crashed before it was warm again; the log
            # blocks it wrote since carry fresh times, but the old records did not get fresher.
            data_wall = max(data_wall, mark.at) if mark.current else min(data_wall, mark.at)
        if records and ttl > 0 and wall - data_wall >= ttl:
            logger.warning(
                "data on disk is %.0fs old, past the tombstone lifetime (%.0fs): not loaded, the node warms from its peers",
                wall - data_wall, ttl,
            )
            # Set aside, not left in place: the log would otherwise go on at its last
            # generation, and a restart soon after would load these stale records under the
            # new ones' fresh wall time (the resurrection this refusal exists to prevent).
            if SNAPSHOT in names:
                disk.move_aside(SNAPSHOT, ".stale")
            for _, name in logs:
                disk.move_aside(name, ".stale")
            disk.remove(ALIVE)
            if self.config.appendonly:
                self.gen = 1
                self._new_log()
            return "disk data older than the tombstone lifetime: not loaded (set aside as .stale)"
        if data_wall > wall + 1:
            logger.warning("data on disk was written %.1fs in the future of this clock", data_wall - wall)
        keyspace.tap = None  # loading is not a change
        restore = keyspace.restore
        try:
            for record, replicas in records:
                restore(record, replicas, wall)
        finally:
            keyspace.tap = self.tap
        keyspace.tombstone_ttl = max(keyspace.tombstone_ttl, ttl)
        self.loaded_keys = len(keyspace)
        if records:
            # Until the node is warm again its disk is not a current copy: cap its freshness.
            write_mark(disk, AliveMark(min(data_wall, wall), False))
        else:
            disk.remove(ALIVE)
        if self.config.appendonly:
            if self.gen < first_gen or disk.size(log_name(self.gen)) == 0:
                self.gen = max(self.gen, first_gen, 1)
                self._new_log()
            for gen, name in logs:
                if gen < self.gen and gen < first_gen:
                    disk.remove(name)  # covered by the snapshot
        return "; ".join(said) or "nothing on disk"

    # --- the log ------------------------------------------------------------------

    def _new_log(self) -> None:
        name = log_name(self.gen)
        self.disk.remove(name)
        self.disk.append(name, log_start(self.gen, self.node_id))
        self.disk.sync(name)

    def end_turn(self, keyspace: Keyspace, wall: float, now: float) -> None:
        """Log the turn's changes (before its replies go out) and fsync as configured.
        Raises :class:`~actors.kernel.disk.DiskError` when the log cannot be written."""
        tap = self.tap
        if not tap.dirty:
            if self._unsynced and now - self._last_sync >= 1.0:
                self._sync_everysec(now)
            return
        peek = keyspace.peek
        records = [stored_record(key, *peek(key)) for key in tap.take_dirty()]
        name = log_name(self.gen)
        self.disk.append(name, log_block(wall, records, keyspace.tombstone_ttl))
        policy = self.config.appendfsync
        if policy == "always":
            self.disk.sync(name)
        elif policy == "everysec":
            self._unsynced = True
            if now - self._last_sync >= 1.0:
                self._sync_everysec(now)

    def _sync_everysec(self, now: float) -> None:
        if self.disk.sync_soon(log_name(self.gen)):
            self._last_sync = now
            self._unsynced = False

    # --- the alive mark ------------------------------------------------------------

    def mark_alive(self, keyspace: Keyspace, wall: float, ready: bool) -> bool:
        """Every ``tombstone_ttl / 4`` while the node is ``ready``: record durably that the
        data on disk is current at ``wall`` (:mod:`actors.persist.alive`). Written only when
        the disk holds everything the node has: the log fsynced first (``appendonly``), or
        (snapshot-only) no change since the last installed snapshot. True when written.
        Raises :class:`~actors.kernel.disk.DiskError`."""
        ttl = keyspace.tombstone_ttl
        if not ready or ttl <= 0 or wall - self._marked < ttl / 4:
            return False
        if self.config.appendonly:
            if self.tap.dirty:
                return False  # a turn's changes not yet logged: the next tick
            self.disk.sync(log_name(self.gen))
            self._unsynced = False
        elif self.saving or self.last_status != "ok" or self.tap.changes:
            return False
        write_mark(self.disk, AliveMark(wall, True))
        self._marked = wall
        return True

    # --- snapshots ----------------------------------------------------------------

    @property
    def saving(self) -> bool:
        """A snapshot is being captured or installed (Redis's ``rdb_bgsave_in_progress``)."""
        return self.capture is not None or self._installing is not None

    def start_save(self, keyspace: Keyspace, wall: float, now: float) -> None:
        """Begin a snapshot of the keyspace as it is now (and a new log generation).
        Raises :class:`SaveRefused` while another one is being captured or installed."""
        if self.saving:
            raise SaveRefused("Background save already in progress")
        if self.config.appendonly:
            self.end_turn(keyspace, wall, now)  # what came before goes to the old generation
            self.gen += 1
            self._new_log()
        header = {
            "node_id": self.node_id,
            "saved_at": wall,
            "aof_gen": self.gen if self.config.appendonly else 0,
            "tombstone_ttl": keyspace.tombstone_ttl,
        }
        self.capture = SnapshotCapture(keyspace, self.tap, header)
        self.tap.changes = 0
        self.slice_max_s = 0.0
        self._unsynced_bytes = 0
        self.disk.remove(_TMP)
        try:
            self.disk.append(_TMP, self.capture.start())
        except DiskError:
            self._failed(wall)
            raise

    def save_slice(
        self,
        now: Callable[[], float],
        budget_s: float,
        wall: float,
        installed: Callable[[DiskError | None], None] | None = None,
    ) -> bool:
        """Write the next slice; True when there is nothing more to slice. Without
        ``installed`` (SAVE) the snapshot is then installed, or failed (``last_status``
        says why). With it (BGSAVE) the install runs off the host's thread
        (``Disk.install_soon``): ``installed`` is called with its outcome, which the caller
        hands back to :meth:`install_done` (a message to the store); until then the save is
        still in progress. Raises nothing: a disk failure aborts the save."""
        capture = self.capture
        if capture is None:
            return True
        try:
            if not capture.done:
                chunk = capture.slice(now, budget_s)
                if chunk:
                    self.disk.append(_TMP, chunk)
                    self._unsynced_bytes += len(chunk)
                    if self._unsynced_bytes >= SYNC_EVERY_BYTES and self.disk.sync_soon(_TMP):
                        self._unsynced_bytes = 0  # incremental: little is left for the final fsync
                if not capture.done:
                    return False
            self.disk.append(_TMP, capture.finish())
            if installed is not None:
                self.capture = None
                self._installing = capture.header
                self.disk.install_soon(_TMP, SNAPSHOT, installed)
                return True
            self.disk.install(_TMP, SNAPSHOT)
        except DiskError as exc:
            logger.error("snapshot failed: %s", exc)
            self._installing = None
            self._failed(wall)
            return True
        self.capture = None
        self._installed(capture.header)
        return True

    def save_now(self, now: Callable[[], float], wall: float) -> bool:
        """Every slice of the capture started, then the install, in this turn (``SAVE``:
        the node answers nothing else meanwhile, as Redis's blocks). True when installed."""
        while not self.save_slice(now, float("inf"), wall):
            pass
        return self.last_status == "ok"

    def install_done(self, error: DiskError | None, wall: float) -> None:
        """The outcome of a background install (:meth:`save_slice` with ``installed``);
        ignored when no install is pending (a foreground save took over meanwhile)."""
        header = self._installing
        if header is None:
            return
        self._installing = None
        if error is not None:
            logger.error("snapshot failed: %s", error)
            self._failed(wall)
        else:
            self._installed(header)

    def _installed(self, header: dict[str, Any]) -> None:
        self._snapshot_size = self.disk.size(SNAPSHOT)
        self.last_save = float(header["saved_at"])  # the instant the file holds
        self.last_status = "ok"
        self.saves += 1
        if self.config.appendonly:
            for name in self.disk.names():
                gen = log_gen(name)
                if gen is not None and gen < self.gen:
                    self.disk.remove(name)

    def abandon_save(self) -> None:
        """Drop the snapshot being captured (a foreground save takes over: SIGTERM during
        a BGSAVE). The logs it would have retired stay until a snapshot is installed. A
        background install already under way is waited for (``Disk.settle``), so that it
        cannot land after, and over, the foreground one; its outcome is then ignored."""
        if self._installing is not None:
            self._installing = None
            self.disk.settle()
        if self.capture is not None:
            self.capture.abort()
            self.capture = None
            self.disk.remove(_TMP)

    def _failed(self, wall: float) -> None:
        if self.capture is not None:
            self.capture.abort()
            self.capture = None
        self.last_status = "err"
        self._retry_at = wall + RETRY_AFTER_S
        try:
            self.disk.remove(_TMP)
        except DiskError:
            pass

    def due(self, wall: float) -> str | None:
        """Why a snapshot should start now (a save rule, the log's growth), or None."""
        if self.saving or wall < self._retry_at:
            return None
        changes = self.tap.changes
        for seconds, at_least in self.config.save:
            if changes >= at_least and wall - self.last_save >= seconds:
                return f"{at_least} changes in {seconds} seconds"
        pct = self.config.rewrite_percentage
        if self.config.appendonly and pct > 0:
            size = self.disk.size(log_name(self.gen))
            if size >= self.config.rewrite_min_size and size * 100 >= self._snapshot_size * pct:
                return f"log rewrite: {size} bytes past {pct}% of the snapshot's {self._snapshot_size}"
        return None

    def stats(self) -> dict[str, Any]:
        return {
            "rdb_changes_since_last_save": self.tap.changes,
            "rdb_bgsave_in_progress": int(self.saving),
            "rdb_start_usec": round(self.start_took_s * 1e6),
            "rdb_slice_max_usec": round(self.slice_max_s * 1e6),
            "rdb_last_save_time": int(self.last_save),
            "rdb_last_bgsave_status": self.last_status,
            "rdb_saves": self.saves,
            "aof_enabled": int(self.config.appendonly),
            "aof_current_size": self.disk.size(log_name(self.gen)) if self.config.appendonly else 0,
            "loaded_keys": self.loaded_keys,
        }
