"""What a request asks for: a category and a complexity 1-10, from the request body alone.

The default is a rule-based classifier (weighted, precompiled regular expressions in English and German, with
common French/Spanish/Italian words): no network, a few tens of microseconds. With CLASSIFIER_MODEL set, a small
model on Ollama refines the answer (`ModelRefiner`): short timeout, an LRU cache, and after a failure the rules
alone for a cool-down period, so a slow or absent classifier model never holds requests up for long.
"""
from __future__ import annotations

import collections
import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

CATEGORIES = ("code", "math", "reasoning", "creative", "translation", "vision", "general")
CHAT_CATEGORIES = CATEGORIES  # what a chat-style request can be classified as
EMBEDDING = "embedding"  # the category of embedding requests (not a classifier outcome)
EMBEDDING_PATHS = frozenset({"/api/embed", "/api/embeddings", "/v1/embeddings"})
SCAN_HEAD, SCAN_TAIL = 6000, 2000  # characters of a long prompt the rules look at (start and end)
MIN_SCORE = 1.5  # below this, a prompt is "general"
_TIE_ORDER = {c: i for i, c in enumerate(("vision", "code", "math", "translation", "creative", "reasoning",
                                          "general"))}


@dataclass
class RequestFeatures:
    """The parts of a request the classifier and the selection look at."""

    text: str = ""  # the last user message (or prompt)
    system: str = ""
    history: str = ""  # up to two earlier messages, for context
    images: int = 0
    tools: bool = False
    thinking: bool = False
    suffix: bool = False  # fill-in-the-middle
    embedding: bool = False

    @property
    def requirements(self) -> frozenset:
        """Capabilities a model must have to serve this request at all."""
        if self.embedding:
            return frozenset({"embedding"})
        needs = {"completion"}
        if self.images:
            needs.add("vision")
        if self.tools:
            needs.add("tools")
        if self.thinking:
            needs.add("thinking")
        if self.suffix:
            needs.add("insert")
        return frozenset(needs)


@dataclass
class Classification:
    category: str
    complexity: int
    language: str = "en"
    scores: dict = field(default_factory=dict)
    reasons: list = field(default_factory=list)
    source: str = "rules"  # rules | model | model-cache
    elapsed_us: float = 0.0

    def as_dict(self) -> dict:
        return {"category": self.category, "complexity": self.complexity, "language": self.language,
                "scores": {k: round(v, 2) for k, v in self.scores.items()}, "reasons": list(self.reasons),
                "source": self.source, "elapsed_us": round(self.elapsed_us, 1)}


# -- reading the request ------------------------------------------------------------------------------------

def _content_text(content) -> tuple[str, int]:
    """Text and image count of a message content (a string, or OpenAI/Anthropic/Responses parts)."""
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        return "", 0
    texts, images = [], 0
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict):
            kind = part.get("type", "")
            if kind in ("image_url", "input_image", "image"):
                images += 1
            elif isinstance(part.get("text"), str):
                texts.append(part["text"])
    return " ".join(texts), images


def extract_features(path: str, body: dict) -> RequestFeatures:
    """Pull the user's text, system prompt, images, tools and flags out of any routed request shape."""
    f = RequestFeatures()
    if path in EMBEDDING_PATHS:
        f.embedding = True
        value = body.get("input", body.get("prompt"))
        f.text = value if isinstance(value, str) else " ".join(v for v in value or [] if isinstance(v, str)) \
            if isinstance(value, list) else ""
        return f
    f.tools = bool(body.get("tools"))
    think = body.get("think")
    f.thinking = bool(think) and think not in ("none", "false")
    f.suffix = bool(body.get("suffix"))
    images = body.get("images")
    f.images = len(images) if isinstance(images, list) else 0
    system = body.get("system") or body.get("instructions") or ""
    if isinstance(system, list):  # Anthropic: a list of text blocks
        system = _content_text(system)[0]
    f.system = system if isinstance(system, str) else ""
    if isinstance(body.get("prompt"), str):
        f.text = body["prompt"]
    messages = body.get("messages")
    if not isinstance(messages, list) and isinstance(body.get("input"), (str, list)):  # /v1/responses
        messages = [{"role": "user", "content": body["input"]}] if isinstance(body["input"], str) else body["input"]
    if isinstance(messages, list):
        users, others = [], []
        for message in messages:
            if not isinstance(message, dict):
                continue
            text, count = _content_text(message.get("content"))
            if isinstance(message.get("images"), list):
                count += len(message["images"])
            f.images += count
            role = message.get("role", "user")
            if role in ("system", "developer"):
                f.system = f"{f.system}\n{text}".strip()
            elif role == "user":
                users.append(text)
            else:
                others.append(text)
        if users:
            f.text = users[-1]
            f.history = " ".join(users[-3:-1])
    return f


# -- the rules ----------------------------------------------------------------------------------------------
# A prompt is lower-cased and split into words once; most rules are word sets, word stems (`name*`) and
# phrases (substring tests), which cost microseconds however many keywords there are. The few syntax patterns
# are regular expressions that run only when a cheap pre-check (a word or a substring) passes.

_TOKEN = re.compile(r"\w+")
SYNTAX_SCAN = 3000  # characters the syntax regexes look at


class _Text:
    """A prompt prepared once for all rules."""

    __slots__ = ("raw", "low", "tokens", "words", "_stems")

    def __init__(self, raw: str):
        self.raw = raw
        self.low = raw.lower()
        self.tokens = _TOKEN.findall(self.low)
        self.words = frozenset(self.tokens)
        self._stems: dict[int, set] = {}

    def prefixes(self, length: int) -> set:
        found = self._stems.get(length)
        if found is None:
            found = self._stems[length] = {w[:length] for w in self.words if len(w) >= length}
        return found


class K:
    """Keywords: `word`, `stem*` or `a phrase` (anything that is not a plain word), separated by `|`."""

    def __init__(self, spec: str, weight: float):
        self.weight = weight
        self.words, self.phrases = set(), []
        self.stems: dict[int, set] = {}
        for item in (i.strip() for i in spec.split("|")):
            if not item:
                continue
            if item.endswith("*") and _TOKEN.fullmatch(item[:-1]):
                self.stems.setdefault(len(item) - 1, set()).add(item[:-1])
            elif _TOKEN.fullmatch(item):
                self.words.add(item)
            else:
                self.phrases.append(item)

    def match(self, t: _Text) -> str | None:
        hit = self.words & t.words
        if hit:
            return min(hit)
        for length, stems in self.stems.items():
            hit = stems & t.prefixes(length)
            if hit:
                return min(hit) + "…"
        for phrase in self.phrases:
            if phrase in t.low:
                return phrase
        return None


class R:
    """A regular expression, tried only when one of `needs` (words or substrings) is present."""

    def __init__(self, pattern: str, weight: float, needs: str = "", flags: int = 0, raw: bool = False):
        self.pattern = re.compile(pattern, flags)
        self.weight = weight
        self.raw = raw  # match the original text (case matters), not the lower-cased one
        self.need_words = {n for n in needs.split("|") if n and _TOKEN.fullmatch(n)}
        self.need_text = [n for n in needs.split("|") if n and not _TOKEN.fullmatch(n)]

    def match(self, t: _Text) -> str | None:
        if (self.need_words or self.need_text) and not (self.need_words & t.words or
                                                        any(n in t.low for n in self.need_text)):
            return None
        found = self.pattern.search((t.raw if self.raw else t.low)[:SYNTAX_SCAN])
        return found.group(0).strip()[:30] if found else None


class Suffix:
    """Words ending in one of the suffixes (IndexError, NullPointerException), the suffix alone not counted."""

    def __init__(self, suffixes: tuple, weight: float):
        self.suffixes, self.weight = suffixes, weight

    def match(self, t: _Text) -> str | None:
        for word in t.words:
            if word.endswith(self.suffixes) and word not in self.suffixes:
                return word
        return None


# Each rule counts once per text; weights were set on the labelled set in tests/intelli.
RULES: dict[str, list] = {
    "code": [
        K("```", 3.0),
        R(r"^\s*(?:async\s+)?(?:def|class)\s+\w+\s*[\(:]", 3.0, "def|class", re.MULTILINE),
        R(r"\b(?:function|const|let|var)\s+\w+\s*[=\(]", 2.5, "function|const|let|var"),
        R(r"#include\s*<|\bpublic\s+(?:static\s+)?(?:void|class|int)\b|\bfn\s+\w+\s*\(|\bfunc\s+\w+\s*\(", 3.0,
          "#include|public|fn|func"),
        K("traceback (most recent call last)|segfault|stack trace|stacktrace", 2.5),
        Suffix(("error", "exception"), 2.5),
        R(r"\bSELECT\b[\s\S]{1,200}?\bFROM\b|\bINSERT INTO\b|\bCREATE TABLE\b", 3.0, "select|insert|create",
          raw=True),
        K("python|javascript|typescript|java|c++|c#|golang|rust|ruby|php|kotlin|swift|scala|haskell|perl|lua|"
          "bash|powershell|sql|html|css|react|vue|angular|django|flask|fastapi|node.js|nodejs|npm|pip|docker|"
          "dockerfile|kubernetes|k8s|yaml|json|regex|regexp|git|numpy|pandas|sqlalchemy|jquery|shell script|"
          "cli|api|rest api|graphql|webpack|gradle|maven|cmake|makefile", 2.0),
        K("code|coding|program|programme|programming|script|scripts|snippet|function|functions|method|methods|"
          "variable|variables|class|classes|compiler|compile|compiled|debug|debugging|bug|bugs|refactor*|"
          "unit test|unit tests|pytest|linter|syntax|implement|implementation|endpoint|repository|pull request|"
          "commit|deploy*|runtime|null pointer|recursion|recursive|data structure|linked list|binary tree|"
          "hashmap|hash map|big-o|big o|time complexity|async|await|thread-safe|threadsafe|race condition|"
          "memory leak|off-by-one", 1.5),
        K("programmier*|quellcode|skript|fehlermeldung|klasse|klassen|implementier*|kompilier*|"
          "datenbankabfrage|schleife|variable|variablen|codebeispiel*", 1.5),
        R(r"[;{}][ \t]*$", 1.0, ";|{|}", re.MULTILINE),
        R(r"(?<=\w)\.(?:py|js|ts|go|rs|java|cpp|c|h|rb|php|sh|sql|ya?ml|toml|json)\b", 1.5, "."),
        R(r"(?<=\w)\([\w\s,'\"=]{0,80}\)[ \t]*(?::|\{|;|$)", 1.0, "(", re.MULTILINE),
    ],
    "math": [
        R(r"\d\s*[\+\*/×÷\^]\s*\(?\d|\d\s+-\s+\d", 2.0),
        R(r"[a-z]\s*\^\s*\d|[a-z]²|\d*[a-z]\s*[\+\-]\s*\d+\s*=|=\s*0\b", 2.5, "^|²|="),
        K("f(x)|dx", 2.5),
        K("\\frac|\\int|\\sum|\\sqrt|\\lim|\\cdot|\\pi|\\infty|∫|∑|√|π", 3.0),
        K("solve|equation*|integral|integrate|derivative|differentiate|simplify|factorise|factorize|"
          "prime number|prime numbers|prime factor*|probability|percent|percentage|matrix|matrices|"
          "eigenvalue*|eigenvector*|logarithm|log base|theorem|prove that|proof|geometry|triangle|hypotenuse|"
          "circle|radius|polynomial|arithmetic|algebra|calculus|statistics|standard deviation|variance|"
          "median|average of|square root|how much is|compound interest|fraction|fractions|divisible|"
          "remainder|modulo|quadratic|linear system|vector|vectors|determinant|combinatorics|permutation*|"
          "binomial|expected value", 2.0),
        K("calculate|compute|evaluate|how many|sum of|product of|area|volume|perimeter", 1.0),
        K("berechne*|rechne|gleichung*|löse|ableitung|integral|wahrscheinlichkeit|prozent*|dreieck|primzahl*|"
          "bruch|brüche|wurzel|beweise|quadrat*|mittelwert|zinsen|kreis|fläche|calcule|calculer|calculez|"
          "équation|dérivée|calcula|ecuación|resuelve|calcola|equazione|eigenwert*", 2.0),
        R(r"\d(?:\.\d+)?\s*%|what is \d", 1.5, "%|what is"),
    ],
    "reasoning": [
        K("why|explain why|reason|reasoning|logic|logical|puzzle|riddle|step by step|step-by-step|"
          "think through|think it through|pros and cons|tradeoff|tradeoffs|trade-off|trade-offs|compare|"
          "comparison|versus|analyze|analyse|analysis|evaluate the|implication|implications|consequence|"
          "consequences|what would happen|argue|argument|arguments|justify|deduce|infer|hypothesis|hypotheses|"
          "strategy|decide|decision|should i|which is better|which would be better|cause|causes|caused|"
          "paradox|dilemma|counterargument|assumption|assumptions|critically|weigh|for and against", 1.5),
        K("if all|if every|if some|if no |when all|who is lying|who was lying|telling the truth|knight*|knave*|"
          "how can you tell|how can we know|how can i tell|how can you know", 2.5),
        K("warum|wieso|weshalb|begründe*|analysiere*|vergleich*|vor- und nachteile|pro und contra|"
          "für und wider|rätsel|logisch*|schritt für schritt|abwägung|abwägen|was würde passieren|sollte ich|"
          "folgerung|ursache*|auswirkung*|pourquoi|analyse|analyser|analysez|por qué|compara|perché", 1.5),
    ],
    "creative": [
        K("poem|poems|poetry|story|stories|song|songs|haiku|limerick|sonnet|lyrics|fairy tale|fairytale|fable|"
          "play|rap|ballad|novel|chapter|screenplay|slogan|tagline|verse|verses|rhyme*|rhyming|bedtime story|"
          "fan fiction|fanfiction|short story|joke|jokes|tale|monologue|dialogue between", 2.0),
        R(r"\b(?:write|compose|create|invent|make up|imagine|come up with|brainstorm)\b[\w\s,'-]{0,40}?"
          r"\b(?:poem|story|song|haiku|limerick|sonnet|lyrics|tale|fable|names?|slogan|joke|character|plot|"
          r"scene|world|ideas?|title)\b", 2.0, "write|compose|create|invent|make|imagine|come|brainstorm"),
        K("once upon a time|fictional|fantasy|sci-fi|scifi|character|plot twist|creative|whimsical|"
          "in the style of|imagine", 1.5),
        K("gedicht*|geschichte|märchen|reim|reime|reimen|liedtext|songtext|erfinde*|fantasievoll*|"
          "kurzgeschichte|slogan|erzählung|poème|histoire|conte|poema|cuento|poesia|racconto|favola", 2.0),
        K("schreib*|verfass*|dichte|écris|escribe|scrivi", 0.5),
    ],
    "translation": [
        K("translate|translation|translating|translated", 3.0),
        R(r"\b(?:into|to|in) (?:english|german|french|spanish|italian|portuguese|dutch|japanese|chinese|"
          r"russian|polish|turkish|arabic|korean)\b|\bhow do (?:you|i) say\b",
          1.5, "english|german|french|spanish|italian|portuguese|dutch|japanese|chinese|russian|polish|"
          "turkish|arabic|korean|say"),
        K("übersetz*|auf deutsch|auf englisch|auf französisch|auf spanisch|auf italienisch|ins deutsche|"
          "ins englische|ins französische|ins spanische|traduis|traduire|traduisez|traduce|traducir|traduci|"
          "tradurre|traduction|traducción", 3.0),
    ],
}
# Cues that make a prompt harder or simpler than its length suggests.
_HARDER = K("step by step|step-by-step|prove|proof|optimise|optimize|optimization|optimisation|optimal|"
            "architecture|distributed|concurrency|concurrent|thread-safe|threadsafe|race condition|scalable|"
            "scalability|edge case|edge cases|detailed|in depth|in-depth|thorough|thoroughly|comprehensive|"
            "rigorous|rigorously|production-ready|production ready|formal|formally|multi-step|trade-off|"
            "trade-offs|tradeoffs|ausführlich*|detailliert*|beweise|optimier*|gründlich*|skalierbar*", 1.0)
_SIMPLER = K("brief|briefly|short answer|keep it short|in short|quick question|quickly|in simple terms|"
             "one sentence|one word|tl;dr|tldr|eli5|kurz|kurz gesagt|einfach erklärt|knapp|in einem satz", 1.0)
_GREETING = re.compile(r"^\s*(hi|hello|hey|hallo|servus|moin|guten (morgen|tag|abend)|bonjour|hola|ciao|thanks|"
                       r"thank you|danke)\b[\s!.,?]*\w{0,12}[\s!.?]*$", re.IGNORECASE)
_LISTED = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+\S", re.MULTILINE)
_BASE_COMPLEXITY = {"general": 2, "creative": 3, "translation": 2, "code": 4, "math": 4, "reasoning": 5,
                    "vision": 3}
_LANGUAGE_WORDS = {
    "de": frozenset("der die das und ist nicht ein eine ich du wie was mit für auf bitte mir sich auch werden "
                    "kannst schreibe erkläre welche welcher welches".split()),
    "fr": frozenset("le la les est une et pour avec dans vous je ce qui pas écris explique".split()),
    "es": frozenset("el los las es una y para con por qué como está escribe explica".split()),
    "en": frozenset("the and is are what how you with for this that please write explain can".split()),
}


def _scan_text(text: str) -> str:
    return text if len(text) <= SCAN_HEAD + SCAN_TAIL else text[:SCAN_HEAD] + "\n" + text[-SCAN_TAIL:]


def _score(t: _Text, weight: float, scores: dict, hits: dict) -> None:
    for category, rules in RULES.items():
        for rule in rules:
            found = rule.match(t)
            if found:
                scores[category] += rule.weight * weight
                if weight == 1.0 and len(hits[category]) < 3:
                    hits[category].append(found)


def _language(t: _Text) -> str:
    tokens = t.tokens[:300]
    counts = {lang: sum(1 for w in tokens if w in words) for lang, words in _LANGUAGE_WORDS.items()}
    if any(ch in t.low[:1500] for ch in "äöüß"):
        counts["de"] += 2
    best = max(counts, key=lambda k: (counts[k], k == "en"))
    return best if counts[best] >= 2 and counts[best] > counts["en"] else "en"


def detect_language(text: str) -> str:
    """A cheap guess between en/de/fr/es from function words ("en" when unsure)."""
    return _language(_Text(text[:3000]))


def classify_rules(features: RequestFeatures) -> Classification:
    """The rule-based classification: category scores, the winner, a complexity estimate and why."""
    started = time.perf_counter()
    t = _Text(_scan_text(features.text))
    if features.embedding:
        result = Classification(EMBEDDING, 1, _language(t), reasons=["embedding request"])
        result.elapsed_us = (time.perf_counter() - started) * 1e6
        return result
    scores = {c: 0.0 for c in RULES}
    hits: dict[str, list] = {c: [] for c in RULES}
    _score(t, 1.0, scores, hits)
    if features.system:
        _score(_Text(_scan_text(features.system)), 0.4, scores, hits)
    if features.history:
        _score(_Text(_scan_text(features.history)), 0.3, scores, hits)
    reasons = []
    if features.images:
        category = "vision"
        reasons.append(f"{features.images} image(s) attached")
    else:
        best = max(scores, key=lambda c: (scores[c], -_TIE_ORDER[c]))
        if scores[best] >= MIN_SCORE:
            category = best
            reasons.append(f"{best} cues: " + ", ".join(repr(h) for h in hits[best]) if hits[best]
                           else f"{best} cues in system prompt or history")
        else:
            category = "general"
            reasons.append("no strong category cues")
    complexity = _complexity(features, t, category, scores, reasons)
    result = Classification(category, complexity, _language(t), {c: v for c, v in scores.items() if v}, reasons)
    result.elapsed_us = (time.perf_counter() - started) * 1e6
    return result


def _complexity(features: RequestFeatures, t: _Text, category: str, scores: dict, reasons: list) -> int:
    value = _BASE_COMPLEXITY.get(category, 2)
    words = len(features.text.split()) if len(features.text) < 100000 else len(features.text) // 6
    steps = sum(words > limit for limit in (60, 200, 600, 2000))
    if steps:
        reasons.append(f"{words} words (+{steps})")
    value += steps
    harder = _HARDER.words & t.words
    harder |= {p for p in _HARDER.phrases if p in t.low}
    harder |= {s + "…" for length, stems in _HARDER.stems.items() for s in stems & t.prefixes(length)}
    if harder:
        bonus = min(3, len(harder))
        value += bonus
        reasons.append(f"harder: {', '.join(sorted(harder))[:60]} (+{bonus})")
    questions = t.low.count("?")
    listed = len(_LISTED.findall(t.raw[:SYNTAX_SCAN]))
    if questions >= 3 or listed >= 3:
        value += 1
        reasons.append("several questions or requirements (+1)")
    secondary = sorted((v for c, v in scores.items() if c != category), reverse=True)
    if secondary and secondary[0] >= 3:
        value += 1
        reasons.append("mixes categories (+1)")
    if features.tools:
        value += 1
        reasons.append("tool use (+1)")
    if _SIMPLER.match(t):
        value -= 1
        reasons.append("asks for a short/simple answer (-1)")
    if _GREETING.match(features.text or ""):
        value = 1
        reasons.append("greeting or small talk")
    return max(1, min(10, value))


# -- the optional model refinement --------------------------------------------------------------------------

_REFINE_PROMPT = (
    "Classify the user's request for routing to an AI model. Categories: code (programming), math "
    "(calculation, equations, proofs), reasoning (logic, analysis, comparisons, explanations of why), creative "
    "(stories, poems, songs), translation, general (everything else). Complexity: 1 = trivial small talk, "
    "10 = expert multi-step work. Answer with JSON only.\n\nRequest:\n{text}"
)
_REFINE_SCHEMA = {"type": "object", "properties": {
    "category": {"type": "string", "enum": [c for c in CATEGORIES if c != "vision"]},
    "complexity": {"type": "integer", "minimum": 1, "maximum": 10}}, "required": ["category", "complexity"]}


class ModelRefiner:
    """Ask a small model on Ollama to classify; cached, time-boxed, and skipped for a while after a failure."""

    def __init__(self, model: str, client, timeout: float = 2.0, cache_size: int = 1024, cooldown: float = 30.0):
        self.model = model
        self.client = client  # the proxy's UpstreamClient (cooperative under gevent)
        self.timeout = timeout
        self.cooldown = cooldown
        self._cache: collections.OrderedDict[str, tuple[str, int]] = collections.OrderedDict()
        self._cache_size = cache_size
        self._down_until = 0.0
        self.last_error: str | None = None

    def refine(self, features: RequestFeatures, rules: Classification, backend) -> Classification:
        """The model's answer merged into `rules`, or `rules` with the reason it was not used."""
        if features.embedding or features.images or not features.text.strip():
            return rules
        key = hashlib.sha1(f"{self.model}\0{features.system[:500]}\0{features.text[:4000]}".encode()).hexdigest()
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return self._merge(rules, *cached, source="model-cache")
        now = time.monotonic()
        if now < self._down_until:
            rules.reasons.append(f"classifier model skipped (failed recently: {self.last_error})")
            return rules
        started = time.perf_counter()
        try:
            category, complexity = self._ask(features, backend)
        except Exception as exc:  # any failure means: use the rules; remember why, back off for a while
            self.last_error = getattr(exc, "message", None) or str(exc) or exc.__class__.__name__
            self._down_until = now + self.cooldown
            log.warning("classifier model %s failed, using the rules for %.0f s: %s", self.model, self.cooldown,
                        self.last_error)
            rules.reasons.append(f"classifier model failed: {self.last_error}")
            return rules
        self._cache[key] = (category, complexity)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        merged = self._merge(rules, category, complexity, source="model")
        merged.elapsed_us += (time.perf_counter() - started) * 1e6
        return merged

    def _ask(self, features: RequestFeatures, backend) -> tuple[str, int]:
        text = features.text[:3000] if not features.system else f"[system] {features.system[:500]}\n{features.text[:3000]}"
        body = json.dumps({"model": self.model, "prompt": _REFINE_PROMPT.format(text=text), "stream": False,
                           "format": _REFINE_SCHEMA, "keep_alive": "30m",
                           "options": {"temperature": 0, "num_predict": 40}}).encode()
        response = self.client.request("POST", backend.host, backend.port, "/api/generate",
                                       [("content-type", "application/json")], body,
                                       read_timeout=self.timeout, connect_timeout=min(self.timeout, 2.0))
        raw = response.read()
        if response.status != 200:
            raise ValueError(f"HTTP {response.status} from the classifier model")
        answer = json.loads(json.loads(raw)["response"])
        category = str(answer.get("category", "")).strip().lower()
        if category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r} from the classifier model")
        complexity = max(1, min(10, int(answer.get("complexity", 5))))
        return category, complexity

    @staticmethod
    def _merge(rules: Classification, category: str, complexity: int, source: str) -> Classification:
        reasons = list(rules.reasons)
        if category != rules.category:
            reasons.append(f"classifier model says {category} (rules said {rules.category})")
        reasons.append(f"classifier model complexity {complexity} (rules said {rules.complexity})")
        return Classification(category, complexity, rules.language, rules.scores, reasons, source,
                              rules.elapsed_us)


def classify(features: RequestFeatures, refiner: ModelRefiner | None = None, backend=None) -> Classification:
    """Rules first; the model refinement when configured."""
    result = classify_rules(features)
    if refiner is not None and backend is not None:
        result = refiner.refine(features, result, backend)
    return result
