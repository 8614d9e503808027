"""The OpenAPI 3.1 document of the REST API (a test checks it against the Klein routes)."""

from __future__ import annotations

from typing import Any

_ERR = {"description": "error", "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/Error"}}}}
_OBJ = {"type": "object"}


def _op(summary: str, auth: bool = True, body: dict | None = None, ok: str = "200",
        params: tuple[str, ...] = ()) -> dict:
    op: dict[str, Any] = {"summary": summary,
                          "responses": {ok: {"description": "ok"}, "default": _ERR}}
    if ok != "204":
        op["responses"][ok]["content"] = {"application/json": {"schema": _OBJ}}
    if not auth:
        op["security"] = []
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": body}}}
    if params:
        op["parameters"] = [{"name": p, "in": "path", "required": True,
                             "schema": {"type": "string", "maxLength": 255}} for p in params]
    return op


def _props(required: list[str], **props: dict) -> dict:
    return {"type": "object", "required": required, "properties": props,
            "additionalProperties": True}


S = {"type": "string", "maxLength": 1024}
I = {"type": "integer", "minimum": 0, "maximum": 4294967295}
B = {"type": "boolean"}

PATHS = {
    "/api/v1/health": {"get": _op("Liveness", auth=False)},
    "/api/v1/health/ready": {"get": _op("Readiness (the database answers)", auth=False)},
    "/api/v1/auth/login": {"post": _op("Log in: access and refresh tokens", auth=False,
                                       body=_props(["username", "password"], username=S,
                                                   password=S))},
    "/api/v1/auth/refresh": {"post": _op("New tokens from a refresh token", auth=False,
                                         body=_props(["refresh_token"], refresh_token=S))},
    "/api/v1/users": {
        "get": _op("List users (admin)"),
        "post": _op("Create a user (admin)", ok="201", body=_props(
            ["name", "password", "uid"], name=S, password=S, uid=I, gid=I, is_admin=B))},
    "/api/v1/users/{name}": {
        "get": _op("One user (admin, or the user)", params=("name",)),
        "patch": _op("Change a user's uid, gid or admin flag (admin)", params=("name",),
                     body=_props([], uid=I, gid=I, is_admin=B)),
        "delete": _op("Delete a user (admin)", ok="204", params=("name",))},
    "/api/v1/users/{name}/password": {
        "post": _op("Change a password (the user with the old one, or an admin)", ok="204",
                    params=("name",), body=_props(["new_password"], new_password=S,
                                                  old_password=S))},
    "/api/v1/groups": {
        "get": _op("List groups with members (admin)"),
        "post": _op("Create a group (admin)", ok="201", body=_props(["name", "gid"], name=S,
                                                                   gid=I))},
    "/api/v1/groups/{name}": {
        "delete": _op("Delete a group (admin)", ok="204", params=("name",))},
    "/api/v1/groups/{group}/members/{user}": {
        "put": _op("Add a member (admin)", ok="204", params=("group", "user")),
        "delete": _op("Remove a member (admin)", ok="204", params=("group", "user"))},
    "/api/v1/shares": {
        "get": _op("List shares"),
        "post": _op("Create a share, served at once over NFS and SMB (admin)", ok="201",
                    body=_props(["name"], name=S, metadata_store=S, block_store=S,
                                durability=S, read_only=B, root_squash=B, all_squash=B,
                                anon_uid=I, anon_gid=I, guest_ok=B, smb_signing_required=B))},
    "/api/v1/shares/{name}": {
        "patch": _op("Change a share's options; it is served again with them (admin)",
                     params=("name",), body=_props([], durability=S, read_only=B,
                                                   root_squash=B, all_squash=B, anon_uid=I,
                                                   anon_gid=I, guest_ok=B,
                                                   smb_signing_required=B)),
        "delete": _op("Stop serving a share created through the API (admin)", ok="204",
                      params=("name",))},
    "/api/v1/share-permissions": {
        "get": _op("List share permissions (admin)"),
        "put": _op("Set a user's or group's level on a share (admin)", ok="204",
                   body=_props(["share", "level"], share=S, user=S, group=S,
                               level={"type": "string",
                                      "enum": ["none", "read", "read-write", "admin"]})),
        "delete": _op("Remove a user's or group's level on a share (admin)", ok="204",
                      body=_props(["share"], share=S, user=S, group=S))},
    "/api/v1/stores/{kind}": {
        "get": _op("List metadata or block stores (admin)", params=("kind",)),
        "post": _op("Declare a store (admin)", ok="201", params=("kind",),
                    body=_props(["name", "type"], name=S, type=S, options={"type": "object"}))},
    "/api/v1/stores/{kind}/{name}": {
        "delete": _op("Forget a store no share uses (admin)", ok="204",
                      params=("kind", "name"))},
    "/api/v1/adapters": {"get": _op("NFS and SMB adapters: running, port (admin)")},
    "/api/v1/adapters/{kind}": {
        "patch": _op("Start, stop or move an adapter while the server runs (admin)",
                     params=("kind",), body=_props([], enabled=B, port=I))},
    "/api/v1/settings": {"get": _op("Settings kept in the database (admin)")},
    "/api/v1/settings/{key}": {
        "put": _op("Change a setting live (admin): server.log_level", params=("key",),
                   body=_props(["value"], value=S))},
    "/api/v1/openapi.json": {"get": _op("This document", auth=False)},
}


def document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "dittofs control API", "version": "1"},
        "paths": PATHS,
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "bearerFormat": "JWT"}},
            "schemas": {"Error": {"type": "object", "properties": {"error": {
                "type": "object", "properties": {"status": {"type": "integer"},
                                                 "message": {"type": "string"}}}}}},
        },
    }
