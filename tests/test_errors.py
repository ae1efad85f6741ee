"""The service's errors cross processes intact (a desktop host's refusal reaches an API replica
through Ray, which pickles it)."""

from __future__ import annotations

import pickle

from computer_use import errors


def test_every_domain_error_pickles_with_its_class_message_status_and_fields() -> None:
    samples: list[errors.DomainError] = [
        errors.SessionBusy(),
        errors.MessageTooLong(12, 10),
        errors.DesktopNotRunning("starting"),
        errors.CapacityReached("full", retry_after=7, details={"host": "h"}),
        errors.Conflict("taken", details={"host": "a"}),
        errors.NotFound("gone"),
    ]
    for error in samples:
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error)
        assert back.message == error.message and back.args == error.args
        assert back.status_code == error.status_code and back.code == error.code
        assert vars(back) == vars(error)
    assert pickle.loads(pickle.dumps(errors.CapacityReached("x", retry_after=7))).retry_after == 7
    assert pickle.loads(pickle.dumps(errors.DesktopNotRunning("starting"))).status == "starting"
