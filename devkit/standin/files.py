"""Slack's current file-upload flow: files.getUploadURLExternal, the upload POST, files.completeUploadExternal; files.info."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from devkit.standin.state import SlackError, StandInState
from devkit.standin.wire import Reply, text_reply


class FileMethods(StandInState):
    def _files_get_upload_url(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            length = int(params.get("length") or "")
        except ValueError:
            raise SlackError("invalid_arguments") from None
        if not params.get("filename"):
            raise SlackError("invalid_arguments")
        file_id = self._new_id("F")
        self._files[file_id] = {
            "id": file_id,
            "name": params["filename"],
            "title": None,
            "length": length,
            "content": None,
            "channel": None,
            "initial_comment": None,
            "thread_ts": None,
        }
        return {"upload_url": f"{self.root}/upload/{file_id}", "file_id": file_id}

    def _upload(self, file_id: str, body: bytes) -> Reply:
        record = self._files.get(file_id)
        if record is None:
            return text_reply(404, "file_not_found")
        record["content"] = body
        return text_reply(200, f"OK - {len(body)}", "text/plain; charset=utf-8")

    @staticmethod
    def _file_info(record: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": record["id"],
            "name": record["name"],
            "title": record["title"] or record["name"],
            "size": len(record["content"] or b""),
            "channels": [record["channel"]] if record["channel"] else [],
        }

    def _files_complete_upload(self, params: dict[str, Any]) -> dict[str, Any]:
        items = params.get("files")
        if not isinstance(items, list) or not items:
            raise SlackError("invalid_arguments")
        records = [self._files.get(str(item.get("id"))) for item in items]
        if any(r is None or r["content"] is None for r in records):
            raise SlackError("file_not_found")
        channels = params.get("channels") or params.get("channel_id") or ""
        channel_list = [self._resolve_channel(c.strip()) for c in channels.split(",") if c.strip()]
        for item, record in zip(items, records, strict=True):
            assert record is not None
            record.update(
                {
                    "title": item.get("title") or record["name"],
                    "initial_comment": params.get("initial_comment"),
                    "thread_ts": params.get("thread_ts"),
                    "channel": channel_list[0] if channel_list else None,
                }
            )
        shared = [self._file_info(r) for r in records if r is not None]
        for channel in channel_list:
            names = ", ".join(
                (f["name"] if f["title"] == f["name"] else f'"{f["title"]}" {f["name"]}') + f", {f['size']} bytes" for f in shared
            )
            comment = params.get("initial_comment") or ""
            self._post(
                channel, {"text": comment, "files": shared, "thread_ts": params.get("thread_ts")}, prefix=f"(uploaded {names}) "
            )
        return {"files": shared}

    def _files_info(self, params: dict[str, Any]) -> dict[str, Any]:
        record = self._files.get(params.get("file") or "")
        if record is None:
            raise SlackError("file_not_found")
        return {"file": self._file_info(record)}
