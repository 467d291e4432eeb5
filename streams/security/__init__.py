"""Who may do what: signatures on the records that move money, and Kafka's ACLs.

- :mod:`~streams.security.signing`: Ed25519 over canonical bytes; the signer registry;
- :mod:`~streams.security.signers`: ``kessai signers``, keeping the registry file;
- :mod:`~streams.security.acl`: the secure profile's ACL table (docs/security.md).
"""
