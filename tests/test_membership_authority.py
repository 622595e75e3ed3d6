"""Gossip authority (issue 13, item 4): a link speaks only for its own node, within bounds.

Unit tests of :class:`actors.cluster.membership.Membership` fed forged rows directly (the
``src`` a row arrives with is the sender as its link authenticated it), with Hypothesis
over forged tables: no row from a non-owner ever admits a member, changes a member's
address or incarnation, or revives a removed one; no incarnation beyond the wall clock +
max clock skew + refutation slack is merged or refuted past.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.cluster.membership import MAX_INTRODUCTIONS, REFUTATION_SLACK, Membership
from actors.protocol.peer_messages import Member, MemberStatus

WALL_MS = 1_767_225_600_000  # 2026-01-01, the simulator's epoch
SKEW_MS = 500
BOUND = WALL_MS + SKEW_MS + REFUTATION_SLACK
STATUSES = [MemberStatus.WARMING, MemberStatus.READY, MemberStatus.LEAVING, MemberStatus.LEFT]


def _membership(me: str = "n1") -> Membership:
    return Membership(
        me, me, WALL_MS - 10_000, replicas=3, partitions=64, heartbeat_interval_s=0.2,
        suspect_phi=8.0, down_after_s=2.0, max_skew_s=SKEW_MS / 1000,
    )


def _three() -> Membership:
    """n1's table with n2 and n3, each admitted by its own gossip."""
    m = _membership()
    for node in ("n2", "n3"):
        m.on_gossip(node, (Member(node, node, WALL_MS - 5_000, MemberStatus.READY),), 0.0, WALL_MS)
    assert sorted(m.table) == ["n1", "n2", "n3"]
    return m


def test_a_member_is_admitted_by_its_own_link_only() -> None:
    m = _membership()
    stranger = Member("n9", "evil:1", WALL_MS, MemberStatus.READY)
    m.on_gossip("n2", (stranger,), 0.0, WALL_MS)
    assert "n9" not in m.table
    assert m.introductions() == ["evil:1"]  # gossiped to: its own answer would admit it
    m.on_gossip("n9", (stranger,), 0.0, WALL_MS)
    assert m.table["n9"] == stranger
    assert m.introductions() == []


def test_identity_takeover_with_incarnation_2_64_is_refused() -> None:
    """The issue's ``["node2", <stranger's addr>, 2**64-1, "ready"]``: from the stranger's own
    link, from a third node's and from node2's own link, it is never merged."""
    m = _three()
    before = dict(m.table)
    forged = Member("n2", "evil:1", 2**64 - 1, MemberStatus.READY)
    for src in ("evil", "n3", "n2"):
        m.on_gossip(src, (forged,), 0.0, WALL_MS)
    assert m.table == before
    assert m.refused >= 2
    # within the incarnation bound, a relay still cannot readdress n2
    m.on_gossip("n3", (Member("n2", "evil:1", WALL_MS, MemberStatus.READY),), 0.0, WALL_MS)
    assert m.table["n2"] == before["n2"]


def test_a_row_about_oneself_is_refuted_only_within_the_bound() -> None:
    m = _membership()
    me = m.me
    m.on_gossip("n2", (Member("n1", "n1", 2**64 - 1, MemberStatus.READY),), 0.0, WALL_MS)
    m.on_gossip("n2", (Member("n1", "n1", BOUND, MemberStatus.LEFT),), 0.0, WALL_MS)  # +1 would pass it
    assert m.me == me
    m.on_gossip("n2", (Member("n1", "n1", BOUND - 1, MemberStatus.LEFT),), 0.0, WALL_MS)
    assert m.me.incarnation == BOUND and m.me.status == me.status  # refuted, within the bound


def test_incarnation_bound_applies_to_a_members_own_rows() -> None:
    m = _membership()
    m.on_gossip("n2", (Member("n2", "n2", BOUND + 1, MemberStatus.READY),), 0.0, WALL_MS)
    assert "n2" not in m.table and m.refused == 1
    m.on_gossip("n2", (Member("n2", "n2", BOUND, MemberStatus.READY),), 0.0, WALL_MS)
    assert m.table["n2"].incarnation == BOUND


def test_invented_members_are_not_admitted_and_introductions_are_bounded() -> None:
    m = _three()
    invented = tuple(Member(f"ghost{i}", f"ghost{i}:1", WALL_MS, MemberStatus.READY) for i in range(8 + 2 * MAX_INTRODUCTIONS))
    m.on_gossip("n3", invented, 0.0, WALL_MS)
    assert sorted(m.table) == ["n1", "n2", "n3"]
    assert len(m.view.placement.members) == 3
    assert len(m.introductions()) == MAX_INTRODUCTIONS


def test_a_removed_member_is_not_revived_by_a_relay_with_incarnation_plus_one() -> None:
    m = _three()
    assert m.remove("n2")
    n2 = m.table["n2"]
    m.on_gossip("n3", (Member("n2", "n2", n2.incarnation + 1, MemberStatus.READY),), 0.0, WALL_MS)
    assert m.table["n2"].status == MemberStatus.LEFT
    # its own link, alive after all, does come back (a refutation, as before)
    m.on_gossip("n2", (Member("n2", "n2", n2.incarnation + 1, MemberStatus.READY),), 0.0, WALL_MS)
    assert m.table["n2"].status == MemberStatus.READY


def test_relays_still_spread_status_changes_and_a_restart_readdresses_by_its_own_link() -> None:
    m = _three()
    n2 = m.table["n2"]
    m.on_gossip("n3", (n2._replace(status=MemberStatus.LEFT),), 0.0, WALL_MS)  # an operator's remove-node
    assert m.table["n2"].status == MemberStatus.LEFT
    restarted = Member("n2", "n2-new:1", WALL_MS, MemberStatus.WARMING)
    m.on_gossip("n3", (restarted,), 0.0, WALL_MS)
    assert m.table["n2"].status == MemberStatus.LEFT and m.introductions() == ["n2-new:1"]
    m.on_gossip("n2", (restarted,), 0.0, WALL_MS)
    assert m.table["n2"] == restarted


_ids = st.sampled_from(["n1", "n2", "n3", "n4", "evil"])
_rows = st.builds(
    Member,
    _ids,
    st.sampled_from(["n1", "n2", "n3", "evil:1", "n4"]),
    st.one_of(
        st.integers(0, 2**64 - 1),
        st.integers(WALL_MS - 20_000, BOUND + 10),
        st.sampled_from([WALL_MS - 5_000, WALL_MS - 4_999]),
    ),
    st.sampled_from(STATUSES),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["n3", "evil"]), st.lists(_rows, max_size=6)), max_size=6), st.booleans())
def test_forged_rows_from_non_owners_never_admit_readdress_reincarnate_or_revive(
    frames: list[tuple[str, list[Member]]], removed: bool
) -> None:
    m = _three()
    if removed:
        m.remove("n2")
    for src, rows in frames:
        before = dict(m.table)
        m.on_gossip(src, tuple(rows), 0.0, WALL_MS)
        for node_id, row in m.table.items():
            old = before.get(node_id)
            if node_id == src:
                continue  # its own row: its own word
            assert old is not None, f"{src} admitted {node_id}"
            assert row.addr == old.addr, f"{src} readdressed {node_id}"
            if node_id != "n1":
                assert row.incarnation == old.incarnation, f"{src} re-incarnated {node_id}"
            if old.status == MemberStatus.LEFT:
                assert row.status == MemberStatus.LEFT, f"{src} revived {node_id}"
        assert m.me.incarnation <= BOUND
        assert all(row.incarnation <= BOUND for row in m.table.values())


def test_a_member_named_only_by_others_is_rumoured_until_it_speaks_leaves_or_is_forgotten() -> None:
    """A restarted node must not count owners on a table short of one (issue 15): a member
    other members name but that never spoke to this node is rumoured in the view."""
    m = _three()
    n4 = Member("n4", "n4", WALL_MS - 5_000, MemberStatus.READY)
    assert m.on_gossip("n2", (n4,), 1.0, WALL_MS)  # the view changed: n4 is rumoured
    assert m.view.rumoured == ("n4",) and "n4" not in m.table
    m.on_gossip("n4", (n4,), 1.1, WALL_MS)  # its own link admits it
    assert m.view.rumoured == () and "n4" in m.table
    n5 = Member("n5", "n5", WALL_MS - 5_000, MemberStatus.READY)
    m.on_gossip("n2", (n5,), 2.0, WALL_MS)
    assert m.view.rumoured == ("n5",)
    m.on_gossip("n3", (n5._replace(status=MemberStatus.LEFT),), 2.1, WALL_MS)  # removed
    assert m.view.rumoured == ()
    m.on_gossip("n2", (n5,), 3.0, WALL_MS)
    m.tick(3.0 + 0.2 * 9)
    assert m.view.rumoured == ("n5",)  # still named recently enough
    m.tick(3.0 + 0.2 * 11)  # nobody named it for 10 heartbeats: no longer in their tables
    assert m.view.rumoured == ()


def test_rumours_are_bounded() -> None:
    m = _three()
    rows = tuple(Member(f"g{i}", f"g{i}", WALL_MS, MemberStatus.READY) for i in range(MAX_INTRODUCTIONS * 2))
    m.on_gossip("n2", rows, 1.0, WALL_MS)
    assert len(m.view.rumoured) == MAX_INTRODUCTIONS
