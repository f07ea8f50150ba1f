"""Secret masking: what is masked, what is kept, and that streaming never cuts a secret in two."""

from __future__ import annotations

import io

import pytest

from gitstore.secrets import CHUNK, MASK, Masker

GH = "ghp_" + "A1b2C3d4" * 5


def masked(text: str, **kw: object) -> tuple[str, int]:
    out, n = Masker(env={}, **kw).mask(text.encode())  # type: ignore[arg-type]
    return out.decode(), n


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abcdefghijklmnop123", "Authorization: Bearer ***MASKED***"),
        (
            "git clone https://alice:s3cret@example.com/r",
            "git clone https://***MASKED***@example.com/r",
        ),
        (f"GH={GH} done", "GH=***MASKED*** done"),
        ("github_pat_" + "x" * 30, "***MASKED***"),
        ("id AKIAABCDEFGHIJKLMNOP end", "id ***MASKED*** end"),
        ("id ASIAABCDEFGHIJKLMNOP end", "id ***MASKED*** end"),
        ("slack xoxb-1234567890-abcdefg", "slack ***MASKED***"),
        ("jwt eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl", "jwt ***MASKED***"),
        ("api_key=XYZ123&x=1", "api_key=***MASKED***&x=1"),
        ("TOKEN: abc123", "TOKEN: ***MASKED***"),
        ('{"password": "p@ss", "user": "bob"}', '{"password": "***MASKED***", "user": "bob"}'),
        ("secret='hush'", "secret='***MASKED***'"),
    ],
)
def test_well_known_shapes_are_masked_and_their_keys_kept(text: str, expected: str) -> None:
    assert masked(text) == (expected, 1)


def test_a_private_key_block_is_masked_whole() -> None:
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAAAA\n-----END RSA PRIVATE KEY-----"
    assert masked(f"before\n{key}\nafter\n") == ("before\n***MASKED***\nafter\n", 1)


@pytest.mark.parametrize(
    "text",
    [
        "tokens and keyboards and passwords are words",
        "mytoken=abc",  # not the key 'token'
        "Bearer short",  # too short to be a token
        "AKIA123",  # too short for an access key id
        "https://example.com/path:with@colon",  # no user:pass before the host
        "token=***MASKED***",  # already masked: not counted again
        'metadata {"token": {"scope": "read"}}',  # a structure, not a secret value
        "token=[1, 2]",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert masked(text) == (text, 0)


def test_secret_named_environment_values_are_masked() -> None:
    env = {"DEPLOY_TOKEN": "tok-1234567890", "DB_PASSWORD": "correct-horse", "HOME": "/root/x"}
    out, n = Masker(env=env).mask(b"tok-1234567890 correct-horse /root/x")
    assert (out, n) == (b"***MASKED*** ***MASKED*** /root/x", 2)


def test_short_environment_values_are_not_masked() -> None:
    out, n = Masker(env={"SSH_KEY": "short"}).mask(b"a short story")
    assert (out, n) == (b"a short story", 0)


def test_literal_secrets_are_masked_longest_first() -> None:
    out, n = Masker(["abc", "abcdef-secret"], env={}).mask(b"x abcdef-secret y abc")
    assert (out, n) == (b"x ***MASKED*** y ***MASKED***", 2)


def test_masking_can_be_limited_to_literals() -> None:
    out, n = Masker(["hush-hush"], env={}, shapes=False).mask(f"{GH} hush-hush".encode())
    assert (out, n) == (f"{GH} ***MASKED***".encode(), 1)


def test_scan_names_the_line_and_kind_without_the_secret() -> None:
    findings = Masker(env={}).scan(b"ok\nAuthorization: Bearer abcdefghijklmnop\nok\n")
    assert [(f.line, f.kind) for f in findings] == [(2, "bearer token")]


def test_stream_masking_matches_whole_masking_across_chunk_boundaries() -> None:
    line = f"step token=abc{GH} ok\n".encode()
    data = line * (3 * CHUNK // len(line) + 7)
    out = io.BytesIO()
    count = Masker(env={}).mask_stream(io.BytesIO(data), out)
    whole, n = Masker(env={}).mask(data)
    assert (out.getvalue(), count) == (whole, n)
    assert GH.encode() not in out.getvalue()


def test_a_private_key_across_a_chunk_boundary_is_masked_whole() -> None:
    key = b"-----BEGIN PRIVATE KEY-----\n" + b"QUJD\n" * 20 + b"-----END PRIVATE KEY-----\n"
    filler = b"x" * 99 + b"\n"
    data = filler * (CHUNK // len(filler)) + key + filler
    out = io.BytesIO()
    assert Masker(env={}).mask_stream(io.BytesIO(data), out) == 1
    assert b"QUJD" not in out.getvalue()
    assert out.getvalue().count(MASK) == 1


def test_an_unterminated_private_key_block_is_still_masked() -> None:
    data = b"log\n-----BEGIN PRIVATE KEY-----\n" + b"QUJD" * (CHUNK // 2) + b"\n" * 3
    data += b"z" * (2 * CHUNK)
    out = io.BytesIO()
    Masker(env={}).mask_stream(io.BytesIO(data), out)
    assert b"QUJD" not in out.getvalue()


def test_values_are_read_and_masked_as_key_equals_value() -> None:
    masker = Masker(env={})
    value = {"api_key": "abc123", "n": {"password": 12345678}, "ok": [True, None, "plain"]}
    assert masker.mask_value(value) == (
        {"api_key": "***MASKED***", "n": {"password": "***MASKED***"}, "ok": [True, None, "plain"]},
        2,
    )


def test_keys_holding_secrets_are_masked_without_losing_an_entry() -> None:
    masked, n = Masker(env={}).mask_value({GH: "a", GH + "Z": "b", "***MASKED***": "c"})
    assert n == 2 and sorted(masked.values()) == ["a", "b", "c"]
    assert not any(GH in k for k in masked)


def test_field_texts_walks_values_deeper_than_pythons_stack() -> None:
    """A stored manifest can nest as deep as its decoder allows; reading it must not recurse."""
    from gitstore.secrets import field_texts

    value: object = "token=abcdefgh12345678"
    for _ in range(5000):
        value = {"k": [value]}
    texts = list(field_texts(value))
    assert texts[-1][1] == "k=token=abcdefgh12345678"
    assert len(texts[-1][0]) == 10000
