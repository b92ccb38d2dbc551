"""Benign prompts that only look dangerous, generated from templates, for jailbreak training.

A guard trained on attack data alone learns that "kill", "exploit", "ignore" or
"password" mean an attack.  These rows (label ``benign``) are everyday programming,
system-administration, medical and security-education questions built from generic
templates written for this project, each filled with a few interchangeable words.
They were not derived from any evaluation or probe row; templates on topics that
``benchmarks/probes/README.md`` or its results list as probe themes (games,
photography, fiction, role-play, one's own earlier message, ...) were left out so
that the probes stay a held-out check.  Deterministic; written to
``polyroute/data/signals/jailbreak-lookalikes.jsonl`` by::

    python -m polyroute.signals.lookalikes > polyroute/data/signals/jailbreak-lookalikes.jsonl
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Iterator

#: (template, {slot: fillers}); every combination of fillers is one prompt
TEMPLATES: tuple[tuple[str, dict[str, tuple[str, ...]]], ...] = (
    (
        "How do I kill a {proc} that is stuck on {os}?",
        {
            "proc": (
                "process",
                "zombie process",
                "background job",
                "hung service",
                "Docker container",
            ),
            "os": ("Linux", "macOS", "Windows", "Ubuntu"),
        },
    ),
    (
        "What's the difference between kill -9 and kill -15 for a {proc}?",
        {"proc": ("Java process", "Node server", "Python worker", "database daemon")},
    ),
    (
        "How can I terminate all {thing} started by my {who}?",
        {
            "thing": ("child processes", "threads", "worker processes", "tmux sessions"),
            "who": ("script", "cron job", "test suite", "user account"),
        },
    ),
    (
        "Write a {lang} function that executes a shell command and returns its output.",
        {"lang": ("Python", "Go", "Rust", "Node.js", "Ruby", "Java")},
    ),
    (
        "How do I execute a {kind} script {when}?",
        {
            "kind": ("bash", "Python", "SQL migration", "Perl"),
            "when": (
                "on startup",
                "every night with cron",
                "from a GitHub Action",
                "as another user",
            ),
        },
    ),
    (
        "How do I override the {what} in {where}?",
        {
            "what": (
                "equals method",
                "base class method",
                "environment variable",
                "default timeout",
            ),
            "where": ("Java", "a Python subclass", "a Dockerfile", "my Helm chart"),
        },
    ),
    (
        "How do I ignore {what} in {tool}?",
        {
            "what": ("a folder", "warnings", "generated files", "a single rule"),
            "tool": ("eslint", "pytest", "mypy", "my .gitignore"),
        },
    ),
    (
        "How can I bypass the {what} when {doing}?",
        {
            "what": ("corporate proxy", "rate limiter in my own test setup", "pre-commit hooks"),
            "doing": ("running tests locally", "testing my API", "making an emergency hotfix"),
        },
    ),
    (
        "What does the error '{err}' mean and how do I fix it?",
        {
            "err": (
                "permission denied",
                "access violation",
                "stack smashing detected",
                "killed by signal 9",
                "segmentation fault",
                "injection point not found",
            )
        },
    ),
    (
        "How do I inject {what} into {where}?",
        {
            "what": ("dependencies", "a mock", "configuration", "environment variables"),
            "where": (
                "a Spring bean",
                "an Angular service",
                "my FastAPI route",
                "a pytest fixture",
            ),
        },
    ),
    (
        "How should I store user passwords in my {app}: {algo} or something else?",
        {
            "app": ("web app", "Django project", "Node backend", "mobile app"),
            "algo": ("bcrypt", "argon2", "SHA-256", "scrypt"),
        },
    ),
    (
        "I forgot my {acct} password. How do I reset it?",
        {"acct": ("Wi-Fi router", "Windows", "MySQL root", "Gmail", "Mac admin")},
    ),
    (
        "How do I give a user {priv} on {os} without sharing the root password?",
        {
            "priv": ("sudo rights", "admin access", "permission to restart a service"),
            "os": ("Ubuntu", "Debian", "CentOS", "a Mac"),
        },
    ),
    (
        "Explain how {attack} attacks work and how to defend my {app} against them.",
        {
            "attack": (
                "SQL injection",
                "cross-site scripting",
                "CSRF",
                "brute-force login",
                "phishing",
                "man-in-the-middle",
                "prompt injection",
            ),
            "app": ("website", "API", "company", "chatbot"),
        },
    ),
    (
        "What is a {term} in cybersecurity, in simple terms?",
        {
            "term": (
                "zero-day exploit",
                "buffer overflow",
                "botnet",
                "rootkit",
                "privilege escalation",
                "payload",
                "backdoor",
            )
        },
    ),
    (
        "I'm studying for {exam}. Can you explain {topic}?",
        {
            "exam": ("Security+", "the CISSP", "my network security course", "a CTF"),
            "topic": (
                "how exploits are classified",
                "what a reverse shell is",
                "how password cracking tools test weak hashes",
                "how antivirus detects malware",
            ),
        },
    ),
    (
        "My {who} has {symptom}. When should we go to the emergency room?",
        {
            "who": ("son", "mother", "partner", "dog"),
            "symptom": ("a fever that won't break", "a deep cut", "chest pain", "a head injury"),
        },
    ),
    (
        "How much {drug} is dangerous for a child? I want to keep my home safe.",
        {"drug": ("paracetamol", "ibuprofen", "iron tablets", "caffeine")},
    ),
    (
        "How do doctors kill {bug} in a {where} infection?",
        {"bug": ("bacteria", "fungus", "parasites"), "where": ("skin", "lung", "blood", "ear")},
    ),
    (
        "How do hackers {act}, and how can I tell if it happened to my {acct}?",
        {
            "act": ("steal passwords", "take over accounts", "hijack sessions"),
            "acct": ("email", "bank account", "Instagram", "laptop"),
        },
    ),
    (
        "Show me how to use {tool} to {task} my own {what}.",
        {
            "tool": ("nmap", "Wireshark", "Metasploit", "Burp Suite", "hashcat"),
            "task": ("audit", "scan", "run a security test on"),
            "what": ("home network", "lab VM", "company's staging server"),
        },
    ),
)


def lookalikes() -> Iterator[tuple[str, str]]:
    """Every filled template and its template's group (``t00``, ``t01``, ...), in a fixed
    order; blank slots collapse cleanly."""
    for k, (template, slots) in enumerate(TEMPLATES):
        names = list(slots)
        for combo in itertools.product(*(slots[n] for n in names)):
            text = template.format(**dict(zip(names, combo, strict=True)))
            yield " ".join(text.replace(" ?", "?").replace(" .", ".").split()), f"t{k:02d}"


def main() -> int:
    first: dict[str, str] = {}
    for text, group in lookalikes():
        first.setdefault(text, group)
    for text, group in first.items():
        row = {"text": text, "label": "benign", "set": "lookalike", "group": group}
        sys.stdout.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
