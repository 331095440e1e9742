"""The OpenAPI description of ``citebot serve`` (``GET /openapi.json``): one document, written out."""

from __future__ import annotations

from typing import Any

from index.config import MAX_K


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def openapi() -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of the API."""
    admin: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "citebot",
            "version": "1",
            "description": "Answers questions from a library of articles by quoting them: verbatim text, the answering "
            "sentence marked, and where it stands. Nothing is generated.",
        },
        "paths": {
            "/v1/ask": {
                "post": {
                    "summary": "Answer a question (the object `citebot ask --json` writes)",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Question"}}},
                    },
                    "responses": {
                        "200": {"description": "The answer: verdict, passages (quote, marked sentence, place)."},
                        "400": _error("The body is not a JSON object."),
                        "404": _error("An article of `in` is not in the library."),
                        "413": _error("The body is over CITEBOT_API_MAX_BODY bytes."),
                        "422": _error("A field is wrong (the message names it)."),
                        "429": _error("Over the client's rate limit."),
                        "503": _error("Not ready yet, the search engine unreachable, or over the time limit."),
                    },
                }
            },
            "/v1/articles": {
                "get": {
                    "summary": "List the library's articles (the objects `citebot list --json` writes)",
                    "responses": {"200": {"description": "The articles."}, "429": _error("Over the rate limit.")},
                },
                "post": {
                    "summary": 'Add an article: a JSON `{"url": ...}`, or a file\'s bytes with `?name=FILE`',
                    "security": admin,
                    "parameters": [{"name": "name", "in": "query", "schema": {"type": "string"}}],
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {"type": "object", "properties": {"url": {"type": "string"}}}
                            },
                            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                        }
                    },
                    "responses": {
                        "201": {"description": "Added."},
                        "200": {"description": "Unchanged or replaced (`status` says which)."},
                        "401": _error("No admin token, a wrong one, or a read-only server."),
                        "413": _error("The file is over CITEBOT_FETCH_MAX_BYTES."),
                        "422": _error("The URL or the file was refused (the message says why)."),
                    },
                },
            },
            "/v1/articles/{article_id}": {
                "delete": {
                    "summary": "Remove an article",
                    "security": admin,
                    "parameters": [
                        {"name": "article_id", "in": "path", "required": True, "schema": {"type": "integer"}}
                    ],
                    "responses": {
                        "200": {"description": "Removed."},
                        "401": _error("No admin token, a wrong one, or a read-only server."),
                        "404": _error("No such article."),
                    },
                }
            },
            "/v1/articles/{article_id}/context": {
                "get": {
                    "summary": "A paragraph with the paragraphs around it (the page's More context)",
                    "parameters": [
                        {"name": "article_id", "in": "path", "required": True, "schema": {"type": "integer"}},
                        {"name": "paragraph", "in": "query", "required": True, "schema": {"type": "integer"}},
                    ],
                    "responses": {
                        "200": {"description": "`article`, `paragraph`, `paragraphs` and `context`, in order."},
                        "404": _error("No such article."),
                        "422": _error("The paragraph is not one of the article's."),
                        "429": _error("Over the rate limit."),
                    },
                }
            },
            "/healthz": {"get": {"summary": "The process is up", "responses": {"200": {"description": "Up."}}}},
            "/readyz": {
                "get": {
                    "summary": "The library is open, the model loaded and the engine reachable",
                    "responses": {"200": {"description": "Ready."}, "503": _error("Not ready, and why.")},
                }
            },
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "Metrics."}}}},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "CITEBOT_API_TOKEN"}},
            "schemas": {
                "Question": {
                    "type": "object",
                    "required": ["question"],
                    "additionalProperties": False,
                    "properties": {
                        "question": {"type": "string"},
                        "in": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1},
                        "k": {"type": "integer", "minimum": 1, "maximum": MAX_K},
                    },
                },
                "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
            },
        },
    }
