"""dittofsctl: the REST API from the command line.

Tokens are kept per context (one per server) in ~/.config/dittofs/ctl.json, mode 0600.
Passwords are read from a prompt (or stdin when it is not a terminal), never from argv.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click
import yaml

CONFIG = Path(os.environ.get("DITTOFSCTL_CONFIG",
                             Path.home() / ".config" / "dittofs" / "ctl.json"))


def _load() -> dict:
    try:
        return json.loads(CONFIG.read_text())
    except (OSError, ValueError):
        return {"current": None, "contexts": {}}


def _save(data: dict) -> None:
    CONFIG.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(CONFIG, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1)
    os.chmod(CONFIG, 0o600)


def _password(prompt: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return sys.stdin.readline().rstrip("\n")


class Client:
    def __init__(self, ctx_name: str | None = None) -> None:
        data = _load()
        name = ctx_name or data.get("current")
        if not name or name not in data["contexts"]:
            raise click.ClickException("not logged in: dittofsctl login URL")
        self.name = name
        self.data = data
        self.ctx = data["contexts"][name]

    def call(self, method: str, path: str, body: Any = None, retry: bool = True) -> Any:
        status, out = request(self.ctx["url"], method, path, body, self.ctx.get("access_token"),
                              self.ctx.get("ca_file"))
        if status == 401 and retry and self.ctx.get("refresh_token"):
            st, tokens = request(self.ctx["url"], "POST", "/auth/refresh",
                                 {"refresh_token": self.ctx["refresh_token"]}, None,
                                 self.ctx.get("ca_file"))
            if st == 200:
                self.ctx.update(access_token=tokens["access_token"],
                                refresh_token=tokens["refresh_token"])
                _save(self.data)
                return self.call(method, path, body, retry=False)
        if status >= 400:
            msg = out.get("error", {}).get("message") if isinstance(out, dict) else out
            raise click.ClickException(f"{status}: {msg}")
        return out


def request(url: str, method: str, path: str, body: Any, token: str | None,
            ca_file: str | None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url.rstrip("/") + "/api/v1" + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    context = None
    if url.startswith("https://"):
        import ssl
        context = ssl.create_default_context(cafile=ca_file)  # verifies the host name
    try:
        with urllib.request.urlopen(req, timeout=30, context=context) as r:
            text = r.read()
            return r.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, text.decode(errors="replace")
    except urllib.error.URLError as e:
        raise click.ClickException(f"cannot reach {url}: {e.reason}") from None


def output(rows: Any, fmt: str, columns: list[str]) -> None:
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1))
    elif fmt == "yaml":
        click.echo(yaml.safe_dump(rows, sort_keys=False).rstrip())
    else:
        rows = rows if isinstance(rows, list) else [rows]
        widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
        click.echo("  ".join(c.upper().ljust(widths[c]) for c in columns))
        for r in rows:
            click.echo("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns))


fmt_option = click.option("-o", "--output", "fmt", type=click.Choice(["table", "json", "yaml"]),
                          default="table")


@click.group()
def main() -> None:
    """Manage a dittofs server over its REST API."""


@main.command()
@click.argument("url")
@click.option("-u", "--user", default="admin", show_default=True)
@click.option("--context", "ctx_name", help="name for this server (default: the URL)")
@click.option("--ca-file", help="trust this CA file for https:// (default: system CAs)")
def login(url: str, user: str, ctx_name: str | None, ca_file: str | None) -> None:
    """Log in and keep the tokens (in a 0600 file)."""
    password = _password(f"password for {user}: ")
    st, tokens = request(url, "POST", "/auth/login", {"username": user, "password": password},
                         None, ca_file)
    if st != 200:
        msg = tokens.get("error", {}).get("message") if isinstance(tokens, dict) else tokens
        raise click.ClickException(f"{st}: {msg}")
    data = _load()
    name = ctx_name or url
    data["contexts"][name] = {"url": url, "user": user, "ca_file": ca_file,
                              "access_token": tokens["access_token"],
                              "refresh_token": tokens["refresh_token"]}
    data["current"] = name
    _save(data)
    click.echo(f"logged in to {url} as {user}")
    if tokens.get("must_change_password"):
        click.echo("this password must be changed: dittofsctl user passwd " + user)


@main.command("use")
@click.argument("context")
def use(context: str) -> None:
    """Switch to another logged-in server."""
    data = _load()
    if context not in data["contexts"]:
        raise click.ClickException(f"no context {context}")
    data["current"] = context
    _save(data)


@main.group()
def user() -> None:
    """Users (SMB logons, API logins)."""


@user.command("list")
@fmt_option
def user_list(fmt: str) -> None:
    output(Client().call("GET", "/users"), fmt, ["name", "uid", "gid", "is_admin"])


@user.command("create")
@click.argument("name")
@click.option("--uid", type=int, required=True)
@click.option("--gid", type=int)
@click.option("--admin", is_flag=True)
@fmt_option
def user_create(name: str, uid: int, gid: int | None, admin: bool, fmt: str) -> None:
    body = {"name": name, "uid": uid, "password": _password(f"password for {name}: "),
            "is_admin": admin}
    if gid is not None:
        body["gid"] = gid
    output(Client().call("POST", "/users", body), fmt, ["name", "uid", "gid", "is_admin"])


@user.command("delete")
@click.argument("name")
def user_delete(name: str) -> None:
    Client().call("DELETE", f"/users/{name}")


@user.command("passwd")
@click.argument("name")
def user_passwd(name: str) -> None:
    c = Client()
    body = {"new_password": _password(f"new password for {name}: ")}
    if c.ctx.get("user") == name:
        body["old_password"] = _password("current password: ")
    c.call("POST", f"/users/{name}/password", body)


@main.group()
def group() -> None:
    """Groups and membership."""


@group.command("list")
@fmt_option
def group_list(fmt: str) -> None:
    rows = Client().call("GET", "/groups")
    for r in rows:
        r["members"] = ",".join(r["members"])
    output(rows, fmt, ["name", "gid", "members"])


@group.command("create")
@click.argument("name")
@click.option("--gid", type=int, required=True)
def group_create(name: str, gid: int) -> None:
    Client().call("POST", "/groups", {"name": name, "gid": gid})


@group.command("add")
@click.argument("group_name")
@click.argument("user_name")
def group_add(group_name: str, user_name: str) -> None:
    Client().call("PUT", f"/groups/{group_name}/members/{user_name}")


@group.command("remove")
@click.argument("group_name")
@click.argument("user_name")
def group_remove(group_name: str, user_name: str) -> None:
    Client().call("DELETE", f"/groups/{group_name}/members/{user_name}")


@main.group()
def share() -> None:
    """Shares (served over NFS and SMB as soon as they are created)."""


@share.command("list")
@fmt_option
def share_list(fmt: str) -> None:
    output(Client().call("GET", "/shares"), fmt, ["name", "metadata_store", "block_store"])


@share.command("create")
@click.argument("name")
@click.option("--metadata-store", default="default", show_default=True)
@click.option("--block-store", default="default", show_default=True)
@click.option("--durability", type=click.Choice(["writeback", "local", "remote"]))
@click.option("--read-only", is_flag=True)
@click.option("--no-root-squash", is_flag=True)
@click.option("--guest-ok", is_flag=True)
@fmt_option
def share_create(name: str, metadata_store: str, block_store: str, durability: str | None,
                 read_only: bool, no_root_squash: bool, guest_ok: bool, fmt: str) -> None:
    body: dict[str, Any] = {"name": name, "metadata_store": metadata_store,
                            "block_store": block_store}
    if durability:
        body["durability"] = durability
    if read_only:
        body["read_only"] = True
    if no_root_squash:
        body["root_squash"] = False
    if guest_ok:
        body["guest_ok"] = True
    output(Client().call("POST", "/shares", body), fmt, ["name", "metadata_store",
                                                         "block_store"])


@share.command("grant")
@click.argument("name")
@click.option("--user", "user_name")
@click.option("--group", "group_name")
@click.option("--level", type=click.Choice(["none", "read", "read-write", "admin"]),
              required=True)
def share_grant(name: str, user_name: str | None, group_name: str | None, level: str) -> None:
    """Set a user's or group's level on a share (a share with any is closed to others)."""
    body = {"share": name, "level": level}
    body.update({"user": user_name} if user_name else {"group": group_name})
    Client().call("PUT", "/share-permissions", body)


@share.command("revoke")
@click.argument("name")
@click.option("--user", "user_name")
@click.option("--group", "group_name")
def share_revoke(name: str, user_name: str | None, group_name: str | None) -> None:
    body = {"share": name, **({"user": user_name} if user_name else {"group": group_name})}
    Client().call("DELETE", "/share-permissions", body)


@share.command("permissions")
@fmt_option
def share_permissions(fmt: str) -> None:
    rows = Client().call("GET", "/share-permissions")
    for r in rows:
        r["who"] = f"user:{r['user']}" if "user" in r else f"group:{r['group']}"
    output(rows, fmt, ["share", "who", "level"])


@share.command("delete")
@click.argument("name")
def share_delete(name: str) -> None:
    Client().call("DELETE", f"/shares/{name.strip('/')}")


@user.command("update")
@click.argument("name")
@click.option("--uid", type=int)
@click.option("--gid", type=int)
@click.option("--admin/--no-admin", default=None)
@fmt_option
def user_update(name: str, uid: int | None, gid: int | None, admin: bool | None,
                fmt: str) -> None:
    body = {k: v for k, v in (("uid", uid), ("gid", gid), ("is_admin", admin)) if v is not None}
    output(Client().call("PATCH", f"/users/{name}", body), fmt,
           ["name", "uid", "gid", "is_admin"])


@group.command("delete")
@click.argument("name")
def group_delete(name: str) -> None:
    Client().call("DELETE", f"/groups/{name}")


@share.command("update")
@click.argument("name")
@click.option("--read-only/--read-write", default=None)
@click.option("--durability", type=click.Choice(["writeback", "local", "remote"]))
@click.option("--guest-ok/--no-guest", default=None)
@fmt_option
def share_update(name: str, read_only: bool | None, durability: str | None,
                 guest_ok: bool | None, fmt: str) -> None:
    body = {k: v for k, v in (("read_only", read_only), ("durability", durability),
                              ("guest_ok", guest_ok)) if v is not None}
    output(Client().call("PATCH", f"/shares/{name.strip('/')}", body), fmt,
           ["name", "metadata_store", "block_store", "read_only"])


@main.group()
def store() -> None:
    """Named metadata and block stores."""


@store.command("list")
@click.argument("kind", type=click.Choice(["metadata", "block"]))
@fmt_option
def store_list(kind: str, fmt: str) -> None:
    output(Client().call("GET", f"/stores/{kind}"), fmt, ["name", "type", "source"])


@store.command("create")
@click.argument("kind", type=click.Choice(["metadata", "block"]))
@click.argument("name")
@click.option("--type", "stype", required=True, help="memory, lmdb, postgres / memory, fs, s3")
@click.option("--option", "options", multiple=True, help="KEY=VALUE (repeatable)")
def store_create(kind: str, name: str, stype: str, options: tuple[str, ...]) -> None:
    opts = {}
    for o in options:
        key, _, value = o.partition("=")
        opts[key] = yaml.safe_load(value) if value else ""
    Client().call("POST", f"/stores/{kind}", {"name": name, "type": stype, "options": opts})


@store.command("delete")
@click.argument("kind", type=click.Choice(["metadata", "block"]))
@click.argument("name")
def store_delete(kind: str, name: str) -> None:
    Client().call("DELETE", f"/stores/{kind}/{name}")


@main.group()
def adapter() -> None:
    """The NFS and SMB adapters."""


@adapter.command("list")
@fmt_option
def adapter_list(fmt: str) -> None:
    output(Client().call("GET", "/adapters"), fmt, ["type", "enabled", "port"])


@adapter.command("set")
@click.argument("kind", type=click.Choice(["nfs", "smb"]))
@click.option("--enable/--disable", default=None)
@click.option("--port", type=int)
def adapter_set(kind: str, enable: bool | None, port: int | None) -> None:
    body = {k: v for k, v in (("enabled", enable), ("port", port)) if v is not None}
    Client().call("PATCH", f"/adapters/{kind}", body)


@main.group()
def setting() -> None:
    """Settings applied while the server runs."""


@setting.command("list")
@fmt_option
def setting_list(fmt: str) -> None:
    rows = [{"key": k, "value": v} for k, v in Client().call("GET", "/settings").items()]
    output(rows, fmt, ["key", "value"])


@setting.command("set")
@click.argument("key")
@click.argument("value")
def setting_set(key: str, value: str) -> None:
    Client().call("PUT", f"/settings/{key}", {"value": value})


@main.command()
@fmt_option
def health(fmt: str) -> None:
    output(Client().call("GET", "/health/ready"), fmt, ["status", "shares"])


if __name__ == "__main__":
    main()
