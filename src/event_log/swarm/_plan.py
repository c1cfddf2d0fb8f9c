"""The simulated world and the run drawn from it up front: agents, tasks and their fates.

Everything that decides an outcome is drawn here, from the run's one generator and
in a fixed order (agents, then tasks), so the same seed gives the same outcomes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from . import Agent

NAMES = ("ada", "bob", "cy", "dee", "eve", "fay", "gus", "hal", "ivy", "jo", "kai", "lu")

# Skill -> (task titles, tools an agent uses for it).
CATALOGUE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "search": (
        ("Find prior art on lightning routing", "Collect sources on fee markets"),
        ("web_search", "fetch_page", "extract_links"),
    ),
    "summarise": (
        ("Summarise the incident report", "Digest this week's research notes"),
        ("read_document", "summarise_text", "fetch_page"),
    ),
    "code": (
        ("Fix the flaky payment test", "Add retries to the invoice client"),
        ("read_file", "run_tests", "apply_patch"),
    ),
    "analyse": (
        ("Chart channel liquidity by hour", "Find outliers in the bid history"),
        ("query_db", "run_python", "plot_chart"),
    ),
    "translate": (
        ("Translate the onboarding guide", "Localise the error messages"),
        ("read_document", "translate_text", "spell_check"),
    ),
}
SKILLS = tuple(CATALOGUE)

# Seconds, before time_scale: how long things take in this simulated swarm.
ARRIVAL_GAP = (0.0, 0.25)
BID_THINK = (0.01, 0.12)
TOOL_DURATION = (0.05, 0.4)

# Of the tasks that fail, the share that fail by an agent crash (vs a tool error).
CRASH_SHARE = 0.4


@dataclass(frozen=True, slots=True)
class Step:
    """One tool call of a task's plan, and how it fails (if it does)."""

    tool: str
    duration: float
    failure: Literal["error", "crash"] | None


@dataclass(frozen=True, slots=True)
class Task:
    """A posted task and its fate, drawn up front so a seed fixes the outcome."""

    task_id: str
    title: str
    skill: str
    reward_sats: int
    arrival_gap: float
    plan: tuple[Step, ...]
    bid_seed: int


def draw_agents(rng: random.Random, n: int, run_id: str) -> list[Agent]:
    """``n`` agents with distinct names (numbered past the twelfth) and one to three skills."""
    agents = []
    for i in range(n):
        name = NAMES[i % len(NAMES)] + (str(i // len(NAMES) + 1) if i >= len(NAMES) else "")
        skills = tuple(sorted(rng.sample(SKILLS, rng.randint(1, 3))))
        agents.append(Agent(f"agent-{name}-{run_id}", name, skills))
    return agents


def draw_tasks(rng: random.Random, n: int, run_id: str, failure_rate: float) -> list[Task]:
    """``n`` tasks in posting order; a failing one's plan ends at its failing step."""
    tasks = []
    for i in range(n):
        skill = rng.choice(SKILLS)
        titles, tools = CATALOGUE[skill]
        title = rng.choice(titles)
        reward = rng.randrange(200, 2_001, 10)
        gap = rng.uniform(*ARRIVAL_GAP)
        n_steps = rng.randint(1, 3)
        failing_step: int | None = None
        failure: Literal["error", "crash"] | None = None
        if rng.random() < failure_rate:
            failing_step = rng.randrange(n_steps)
            failure = "crash" if rng.random() < CRASH_SHARE else "error"
        plan = []
        for step in range(n_steps):
            duration = rng.uniform(*TOOL_DURATION)
            fails = failure if step == failing_step else None
            plan.append(Step(rng.choice(tools), duration, fails))
            if step == failing_step:
                break
        task_id = f"task-{i + 1:03d}-{run_id}"
        tasks.append(Task(task_id, title, skill, reward, gap, tuple(plan), rng.getrandbits(64)))
    return tasks
