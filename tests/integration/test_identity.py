"""People, tokens and authentication on both store backends."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from helpers.databases import raw_engine
from shipcaptain import identity
from shipcaptain.errors import AuthenticationFailed, NotFound, PermissionDenied, UsageError
from shipcaptain.records import Person
from shipcaptain.store import Store

ALICE = Person(name="alice", roles={"*": ("release-captain",)}, admin=True)
BOB = Person(name="bob", roles={"production": ("on-call-sre",)}, surfaces=("checkout",))


@pytest.fixture
def team(store: Store) -> Store:
    store.put_team([ALICE, BOB], actor="test", message="team for the test", data={})
    return store


def test_people_round_trip_with_roles_per_environment(team: Store) -> None:
    bob = team.get_person("bob")
    assert bob == BOB
    assert bob.roles_in("production") == ("on-call-sre",)
    assert bob.roles_in("staging") == ()
    assert team.get_person("alice").roles_in("staging") == ("release-captain",)
    with pytest.raises(NotFound):
        team.get_person("mallory")


def test_a_token_authenticates_its_person_and_only_its_hash_is_stored(
    team: Store, store_url: str
) -> None:
    secret, record = identity.create_token(team, "alice", expires_in=None, label="laptop")
    assert secret.startswith(identity.TOKEN_PREFIX)
    assert record.created_by.startswith("bootstrap:")
    assert identity.authenticate(team, secret) == ALICE
    with raw_engine(store_url) as engine, engine.connect() as conn:
        stored = [
            tuple(str(v) for v in row) for row in conn.execute(text("SELECT * FROM sc_tokens"))
        ]
        events = [str(row[0]) for row in conn.execute(text("SELECT data FROM sc_events"))]
    assert stored
    assert not any(secret in value for row in stored for value in row)
    assert not any(secret in data for data in events)


def test_bootstrap_only_for_an_admin_and_only_once(team: Store) -> None:
    with pytest.raises(PermissionDenied, match="admin"):
        identity.create_token(team, "bob", expires_in=None, label="x")
    identity.create_token(team, "alice", expires_in=None, label="first")
    with pytest.raises(PermissionDenied, match="already holds a live token"):
        identity.create_token(team, "alice", expires_in=None, label="second")
    kinds = [event.kind for event in team.list_events()]
    assert kinds == ["team.applied", "token.created"]


def test_unknown_expired_and_revoked_tokens_are_refused_saying_which(team: Store) -> None:
    secret, _ = identity.create_token(team, "alice", expires_in=None, label="admin")
    alice = identity.authenticate(team, secret)
    short, short_record = identity.create_token(
        team, "bob", expires_in=0.2, label="short", by=alice
    )
    assert identity.authenticate(team, short).name == "bob"
    time.sleep(0.3)
    with pytest.raises(AuthenticationFailed, match="expired") as expired:
        identity.authenticate(team, short)
    assert short not in str(expired.value)
    assert short_record.id in str(expired.value)

    kept, kept_record = identity.create_token(team, "bob", expires_in=3600, label="kept", by=alice)
    identity.revoke_token(team, kept_record.id, by=alice)
    with pytest.raises(AuthenticationFailed, match="revoked") as revoked:
        identity.authenticate(team, kept)
    assert kept not in str(revoked.value)

    guess = identity.TOKEN_PREFIX + "not-a-real-one"
    with pytest.raises(AuthenticationFailed, match="unknown token") as unknown:
        identity.authenticate(team, guess)
    assert guess not in str(unknown.value)
    with pytest.raises(AuthenticationFailed, match="not a shipcaptain token"):
        identity.authenticate(team, "hunter2")


def test_only_admins_manage_other_peoples_tokens(team: Store) -> None:
    secret, _ = identity.create_token(team, "alice", expires_in=None, label="admin")
    alice = identity.authenticate(team, secret)
    bob_secret, bob_token = identity.create_token(team, "bob", expires_in=None, label="b", by=alice)
    bob = identity.authenticate(team, bob_secret)
    with pytest.raises(PermissionDenied):
        identity.create_token(team, "alice", expires_in=None, label="x", by=bob)
    _, own = identity.create_token(team, "bob", expires_in=None, label="own", by=bob)
    assert {t.id for t in identity.list_tokens(team, by=bob)} == {bob_token.id, own.id}
    with pytest.raises(PermissionDenied):
        identity.list_tokens(team, by=bob, person="alice")
    assert len(identity.list_tokens(team, by=alice)) == 3
    alice_tokens = identity.list_tokens(team, by=alice, person="alice")
    with pytest.raises(PermissionDenied):
        identity.revoke_token(team, alice_tokens[0].id, by=bob)
    with pytest.raises(UsageError):
        identity.create_token(team, "bob", expires_in=-1, label="x", by=alice)


def test_a_person_removed_from_the_team_cannot_authenticate(team: Store) -> None:
    secret, _ = identity.create_token(team, "alice", expires_in=None, label="admin")
    alice = identity.authenticate(team, secret)
    bob_secret, _ = identity.create_token(team, "bob", expires_in=None, label="b", by=alice)
    team.put_team([ALICE], actor="alice", message="bob left", data={})
    with pytest.raises(AuthenticationFailed, match="no longer on the team"):
        identity.authenticate(team, bob_secret)
    assert team.get_person("bob").active is False
