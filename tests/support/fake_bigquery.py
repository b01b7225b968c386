"""A fake BigQuery REST API and OAuth token endpoint: routes for :class:`FakeHTTPServer`.

:func:`bigquery_routes` answers the few BigQuery v2 calls the tests make (``datasets.list``,
``jobs.query`` with REST paging, ``jobs.getQueryResults``) and :func:`token_routes` a Google
OAuth token endpoint (``POST /token``).
"""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import parse_qs

from tests.support.origins import Request, Response, Route, route

PROJECT: Final = "carto-test"
DATASETS: Final = ("carto_dw", "analytics")
QUERY_ROWS: Final = ((1, "carto"), (2, "proxy"), (3, "tunnel"))
"""What every query returns, two rows on the first page and one on the second."""
ACCESS_TOKEN: Final = "ya29.fake-token"


# -- BigQuery v2 REST ----------------------------------------------------------------------

_SCHEMA: Final = {
    "fields": [
        {"name": "n", "type": "INTEGER", "mode": "NULLABLE"},
        {"name": "word", "type": "STRING", "mode": "NULLABLE"},
    ]
}
_PAGE_TOKEN: Final = "page-2"
_JOB_ID: Final = "job-1"


def _rows(rows: tuple[tuple[int, str], ...]) -> list[dict[str, Any]]:
    return [{"f": [{"v": str(n)}, {"v": word}]} for n, word in rows]


def _job_reference(project: str) -> dict[str, str]:
    return {"projectId": project, "jobId": _JOB_ID, "location": "US"}


def _list_datasets(request: Request, match: re.Match[str]) -> Response:
    project = match["project"]
    datasets = [
        {
            "kind": "bigquery#dataset",
            "id": f"{project}:{name}",
            "datasetReference": {"projectId": project, "datasetId": name},
        }
        for name in DATASETS
    ]
    return Response({"kind": "bigquery#datasetList", "datasets": datasets})


def _query(request: Request, match: re.Match[str]) -> Response:
    """``jobs.query``: complete at once, first page of :data:`QUERY_ROWS` and a page token."""
    return Response(
        {
            "kind": "bigquery#queryResponse",
            "jobComplete": True,
            "jobReference": _job_reference(match["project"]),
            "schema": _SCHEMA,
            "rows": _rows(QUERY_ROWS[:2]),
            "totalRows": str(len(QUERY_ROWS)),
            "pageToken": _PAGE_TOKEN,
        }
    )


def _query_results(request: Request, match: re.Match[str]) -> Response:
    """``jobs.getQueryResults``: the remaining page when asked with the page token."""
    page = QUERY_ROWS[2:] if request.query.get("pageToken") == [_PAGE_TOKEN] else QUERY_ROWS
    return Response(
        {
            "kind": "bigquery#getQueryResultsResponse",
            "jobComplete": True,
            "jobReference": _job_reference(match["project"]),
            "schema": _SCHEMA,
            "rows": _rows(page),
            "totalRows": str(len(QUERY_ROWS)),
        }
    )


def _job(request: Request, match: re.Match[str]) -> Response:
    """``jobs.get``: the query job, done (any other job ID: a load job, done)."""
    project = match["project"]
    if match["job"] != _JOB_ID:
        return Response(_load_job(project, match["job"]))
    return Response(
        {
            "kind": "bigquery#job",
            "id": f"{project}:US.{_JOB_ID}",
            "jobReference": _job_reference(project),
            "configuration": {
                "jobType": "QUERY",
                "query": {
                    "query": "SELECT n, word FROM t",
                    "destinationTable": {"projectId": project, "datasetId": "_t", "tableId": "r"},
                },
            },
            "status": {"state": "DONE"},
            "statistics": {"creationTime": "1700000000000", "query": {}},
        }
    )


def _load_job(project: str, job_id: str) -> dict[str, Any]:
    return {
        "kind": "bigquery#job",
        "id": f"{project}:US.{job_id}",
        "jobReference": {"projectId": project, "jobId": job_id, "location": "US"},
        "configuration": {"jobType": "LOAD", "load": {}},
        "status": {"state": "DONE"},
        "statistics": {"creationTime": "1700000000000", "load": {"outputRows": "2"}},
    }


def _table(request: Request, match: re.Match[str]) -> Response:
    """``tables.get``: tables named ``new_*`` do not exist; every other one holds the rows."""
    project, dataset, table = match["project"], match["dataset"], match["table"]
    if table.startswith("new_"):
        message = f"Not found: Table {project}:{dataset}.{table}"
        return Response({"error": {"code": 404, "message": message, "status": "NOT_FOUND"}}, 404)
    reference = {"projectId": project, "datasetId": dataset, "tableId": table}
    return Response(
        {
            "kind": "bigquery#table",
            "tableReference": reference,
            "schema": _SCHEMA,
            "numRows": str(len(QUERY_ROWS)),
            "numBytes": "64",
            "type": "TABLE",
        }
    )


def _dataset(request: Request, match: re.Match[str]) -> Response:
    """``datasets.get``: every dataset exists."""
    reference = {"projectId": match["project"], "datasetId": match["dataset"]}
    return Response({"kind": "bigquery#dataset", "datasetReference": reference})


def _insert_table(request: Request, match: re.Match[str]) -> Response:
    """``tables.insert``: the table as sent."""
    return Response({"kind": "bigquery#table", **(request.json() or {})})


def _upload(request: Request, match: re.Match[str]) -> Response:
    """A multipart upload of a load job (``uploadType=multipart``): the job, done."""
    body = request.body
    job_id = "load-job"
    marker = b'"jobId": "'
    if marker in body:  # the job ID the client chose, from the metadata part
        job_id = body.split(marker, 1)[1].split(b'"', 1)[0].decode()
    return Response(_load_job(match["project"], job_id))


def bigquery_routes() -> list[Route]:
    """Routes for datasets, tables, queries, jobs and multipart uploads (load jobs)."""
    base = r"/bigquery/v2/projects/(?P<project>[^/]+)"
    tables = rf"{base}/datasets/(?P<dataset>[^/]+)/tables"
    return [
        route("GET", rf"{base}/datasets", _list_datasets),
        route("GET", rf"{base}/datasets/(?P<dataset>[^/]+)", _dataset),
        route("GET", rf"{tables}/(?P<table>[^/]+)", _table),
        route("POST", tables, _insert_table),
        route("POST", rf"{base}/queries", _query),
        route("GET", rf"{base}/jobs/(?P<job>[^/]+)", _job),
        route("GET", rf"{base}/queries/(?P<job>[^/]+)", _query_results),
        route("POST", rf"/upload{base}/jobs", _upload),
    ]


# -- Google OAuth 2.0 token endpoint -------------------------------------------------------


def _token(request: Request, match: re.Match[str]) -> Response:
    grant = parse_qs(request.body.decode()).get("grant_type", [""])[0]
    if not grant:
        return Response({"error": "invalid_request"}, 400)
    return Response({"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"})


def token_routes() -> list[Route]:
    """``POST /token``: any grant gets :data:`ACCESS_TOKEN` for an hour."""
    return [route("POST", r"/token", _token)]
