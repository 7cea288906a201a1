"""Starting a render or resuming it: the one place that compares a job with its journal and says so.

A rerun of the same command finds the journal in the work folder beside OUTPUT. What it records
(a :class:`~vidsr.render.identity.JobIdentity`) is compared with the new plan's: a different
input, model or setting is refused with what changed; another software stack is allowed and
said; what the first run chose for its machine was already given to ``plan_job`` (see
:func:`recorded_choices`), so the frames after the resume are made as those before it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from vidsr.render.identity import JobChangedError, MachineChoices, differences
from vidsr.render.journal import Journal
from vidsr.render.plan import RenderPlan
from vidsr.render.workfolder import WorkFolder

__all__ = ["interrupted_message", "open_job", "recorded_choices"]

Notify = Callable[[str], None]


def recorded_choices(work: WorkFolder, *, restart: bool) -> MachineChoices | None:
    """What an interrupted render of this output chose for its machine, for ``plan_job`` to keep
    (None: there is none, or it is to be discarded). VidsrError if its journal is damaged."""
    if restart:
        return None
    journal = work.read_journal()
    return journal.job.chosen if journal is not None else None


def open_job(work: WorkFolder, plan: RenderPlan, *, restart: bool, inform: Notify) -> Journal:
    """The journal to continue: the recorded one if it is of this job, a new one otherwise.

    Raises JobChangedError (with every change named) for a journal of another input, model or
    settings. Segment files that are missing, damaged or not journaled are dropped and said.
    """
    identity = plan.identity
    journal = None if restart else work.read_journal()
    if restart:
        work.clear()
    if journal is not None:
        recorded = journal.job
        changes = differences(recorded.must_match(), identity.must_match())
        if changes:
            raise JobChangedError(
                f"{work.output} has an interrupted render of a different job ({'; '.join(changes)}); "
                "run it with the earlier input and settings to resume, or add --restart to start over"
            )
        stack_changes = differences(recorded.stack, identity.stack, prefix="stack.")
        if stack_changes:
            inform(
                f"resuming on another software stack ({'; '.join(stack_changes[:4])}): frames made before and "
                "after may differ in the last bits (--restart renders it all on this one)"
            )
        journal.job = replace(identity, chosen=recorded.chosen)
    journal = journal or Journal(job=identity, segment_count=plan.settings.segments)
    _drop_damaged_segments(work, journal, inform)
    stray = work.discard_unrecorded(journal)
    if journal.segments:
        discarded = f"; discarded {len(stray)} unfinished segment file(s)" if stray else ""
        inform(_resume_message(journal, plan) + discarded)
    work.write_journal(journal)
    return journal


def interrupted_message(journal: Journal | None, plan: RenderPlan) -> str:
    """What to say when a render is stopped: what is kept, and how to go on."""
    if journal is None or not journal.segments:
        return "interrupted before the first segment was finished; nothing to resume"
    done, total = journal.frames_done, max(plan.info.frames, journal.frames_done)
    kept = _count(len(journal.done), "segment")
    if journal.done_from_start:
        return f"interrupted after frame {done} of {total} ({kept} kept); run the same command again to resume"
    return (
        f"interrupted with {done} of {total} frames done ({kept} of {journal.segment_count} kept); "
        "run the same command again to resume"
    )


def _resume_message(journal: Journal, plan: RenderPlan) -> str:
    done, total = journal.frames_done, max(plan.info.frames, journal.frames_done, 1)
    share = f"{100 * done / total:.0f} %"
    if journal.done_from_start:
        return f"resuming at frame {done} of {total} ({share}), {_count(len(journal.done), 'segment')} done"
    return (
        f"resuming with {done} of {total} frames done ({share}), "
        f"{len(journal.done)} of {journal.segment_count} segments"
    )


def _drop_damaged_segments(work: WorkFolder, journal: Journal, inform: Notify) -> None:
    """Forget recorded segments whose files are gone or damaged: they are rendered again."""
    for segment in list(journal.segments):
        if segment.file is None:
            continue
        path = work.path / segment.file
        if not path.is_file() or path.stat().st_size != segment.size:
            inform(f"segment {segment.index} is missing or damaged; rendering it again")
            journal.forget(segment.index)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
