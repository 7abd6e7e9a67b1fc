"""TLS credentials made for one deployment: a throw-away CA and the certificate it signed.

A Dask scheduler runs whatever any connected client sends it. On a login node or a
cluster network, a scheduler on plain TCP lets every other user run code as you. Each
deployment therefore gets its own credentials (unless ``tls=False``):

* a certificate authority that exists only for this deployment and signs one
  certificate, which the scheduler, the workers and the client all present;
* every connection is TLS with certificates required on both ends, so only processes
  holding this deployment's key can connect -- not other users, not other deployments;
* the files are written ``0600`` in a ``0700`` directory: the deployment's private
  scratch directory when only this machine needs them, a directory under
  ``~/.cache/daskdeploy/credentials`` when compute nodes read them over a shared file
  system, or a private directory on each SSH host. They are removed at close.

Keys are ECDSA P-256: generating one takes about a millisecond, where RSA-2048 takes
tens of milliseconds, and every TLS library in use accepts them.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from .scratch import shared_cache_dir

if TYPE_CHECKING:
    from distributed import Security

__all__ = [
    "CredentialFiles",
    "Credentials",
    "plain_tcp_warning",
    "shared_credentials_dir",
    "write_private",
    "write_shared",
]

CA_FILE = "ca.pem"
CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
_VALID_DAYS = 366  # longer than any job's time limit; the files are gone at close anyway


@dataclass(frozen=True)
class Credentials:
    """PEM texts of one deployment's CA certificate, certificate and private key.

    Attributes
    ----------
    ca
        The CA certificate every process trusts (and nothing else).
    cert
        The certificate the scheduler, workers and client present, signed by ``ca``.
    key
        The private key of ``cert``.
    """

    ca: str
    cert: str
    key: str

    @classmethod
    def generate(cls, deployment_id: str) -> Credentials:
        """Make a new CA and a certificate signed by it, named after the deployment."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        now = datetime.datetime.now(datetime.timezone.utc)
        start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(_VALID_DAYS)

        def name(text: str) -> x509.Name:
            return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = name(f"daskdeploy {deployment_id} CA")
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(f"daskdeploy {deployment_id}"))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(deployment_id)]), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        return cls(
            ca=ca_cert.public_bytes(pem).decode(),
            cert=cert.public_bytes(pem).decode(),
            key=key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode(),
        )

    def files(self) -> dict[str, str]:
        """File name to content, as :meth:`write` lays them out."""
        return {CA_FILE: self.ca, CERT_FILE: self.cert, KEY_FILE: self.key}

    def write(self, directory: Path) -> CredentialFiles:
        """Write the three files, ``0600``, into ``directory`` (created ``0700``)."""
        directory = Path(directory)
        directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.mkdir(mode=0o700)
        os.chmod(directory, 0o700)  # whatever the umask said
        for name, text in self.files().items():
            descriptor = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as stream:
                stream.write(text)
        return CredentialFiles(directory)


@dataclass(frozen=True)
class CredentialFiles:
    """The credential files of a deployment, in one directory.

    Attributes
    ----------
    directory
        The directory holding ``ca.pem``, ``cert.pem`` and ``key.pem`` (a
        :class:`~pathlib.PurePosixPath` when it names a directory on another host).
    """

    directory: PurePath

    @property
    def ca_file(self) -> PurePath:
        """The CA certificate."""
        return self.directory / CA_FILE

    @property
    def cert_file(self) -> PurePath:
        """The certificate every process presents."""
        return self.directory / CERT_FILE

    @property
    def key_file(self) -> PurePath:
        """Its private key."""
        return self.directory / KEY_FILE

    def security(self) -> Security:
        """A :class:`distributed.Security` for every role, encryption required."""
        from distributed import Security

        cert, key = str(self.cert_file), str(self.key_file)
        return Security(
            require_encryption=True,
            tls_ca_file=str(self.ca_file),
            tls_client_cert=cert,
            tls_client_key=key,
            tls_scheduler_cert=cert,
            tls_scheduler_key=key,
            tls_worker_cert=cert,
            tls_worker_key=key,
        )

    def worker_arguments(self) -> list[str]:
        """The ``dask worker`` command-line arguments that use these files."""
        return [
            *("--tls-ca-file", str(self.ca_file)),
            *("--tls-cert", str(self.cert_file)),
            *("--tls-key", str(self.key_file)),
        ]

    def config(self) -> dict[str, object]:
        """The dask config that makes schedulers and workers started elsewhere use them.

        For processes that get their settings from dask config (distributed's SSH
        processes inherit this process's config).
        """
        cert, key = str(self.cert_file), str(self.key_file)
        return {
            "distributed.comm.require-encryption": True,
            "distributed.comm.tls.ca-file": str(self.ca_file),
            "distributed.comm.tls.scheduler.cert": cert,
            "distributed.comm.tls.scheduler.key": key,
            "distributed.comm.tls.worker.cert": cert,
            "distributed.comm.tls.worker.key": key,
            "distributed.comm.tls.client.cert": cert,
            "distributed.comm.tls.client.key": key,
        }

    def exist(self) -> bool:
        """Whether all three files are there (readable by this user)."""
        paths = (self.ca_file, self.cert_file, self.key_file)
        return all(os.access(path, os.R_OK) for path in paths)

    def remove(self) -> None:
        """Remove the directory and the files; missing is fine."""
        shutil.rmtree(self.directory, ignore_errors=True)


def shared_credentials_dir(deployment_id: str) -> Path:
    """Where credentials that compute nodes must read go (a shared file system).

    ``~/.cache/daskdeploy/credentials/<id>`` (``$XDG_CACHE_HOME`` if set): home
    directories are shared with compute nodes on nearly every cluster. Not created.
    """
    return shared_cache_dir("credentials", deployment_id)


def write_private(deployment_id: str, scratch_dir: Path) -> CredentialFiles:
    """Generate a deployment's credentials into its scratch directory (this machine only)."""
    return Credentials.generate(deployment_id).write(Path(scratch_dir) / "tls")


def write_shared(deployment_id: str, directory: Path | None = None) -> CredentialFiles:
    """Generate a deployment's credentials where compute nodes can read them.

    ``directory`` defaults to :func:`shared_credentials_dir`; a leftover of a crashed
    run at that path is replaced.
    """
    directory = directory or shared_credentials_dir(deployment_id)
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(directory)
    return Credentials.generate(deployment_id).write(directory)


def plain_tcp_warning(backend: str, address: str, loopback: bool) -> str:
    """The warning printed when a deployment runs without TLS (``tls=False``)."""
    who = "every user of this machine" if loopback else "anyone who can reach that address"
    return (
        f"daskdeploy: warning: the {backend} deployment's scheduler listens at {address} "
        f"without TLS (tls=False): {who} can connect to it and run code as you. Drop "
        f"tls=False to use TLS with credentials made for this deployment."
    )
