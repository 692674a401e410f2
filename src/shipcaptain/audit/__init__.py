"""Proof that the audit log is whole, checkable from outside the state database.

- :mod:`~shipcaptain.audit.keys`: the audit signing key (Ed25519, a file outside the
  database) that keys every event and signs checkpoints;
- :mod:`~shipcaptain.audit.anchors`: signed checkpoints (the log's size and head hash, like
  a transparency log's signed tree head) appended to an anchor file, pushed as a Git ref,
  posted to a webhook;
- :mod:`~shipcaptain.audit.verify`: verifying the log against the anchors, and an evidence
  bundle with only the anchor file and the public key (no database).

docs/reference/audit-format.md gives the exact bytes hashed and signed.
"""
