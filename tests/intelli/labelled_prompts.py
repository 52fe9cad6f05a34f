"""A labelled set of prompts for the classifier: (expected category, request body) pairs, several languages.

Written to resemble real traffic, not the rules: the accuracy test reports what the classifier gets right.
"""
from __future__ import annotations

# A 1x1 PNG, base64: Ollama takes images as base64 strings without a data: prefix.
PIXEL = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def chat(text: str, system: str | None = None, **extra) -> dict:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    return {"model": "IntelliProxyLLM", "messages": messages, **extra}


def gen(text: str, **extra) -> dict:
    return {"model": "IntelliProxyLLM", "prompt": text, **extra}


def vision_chat(text: str) -> dict:
    return {"model": "IntelliProxyLLM", "messages": [{"role": "user", "content": text, "images": [PIXEL]}]}


def vision_openai(text: str) -> dict:
    return {"model": "IntelliProxyLLM", "messages": [{"role": "user", "content": [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}}]}]}


LABELLED = [
    # -- code --------------------------------------------------------------------------------------------
    ("code", chat("Write a Python function that checks whether a string is a palindrome.")),
    ("code", chat("Why does this throw?\n\nTraceback (most recent call last):\n  File \"app.py\", line 3, in <module>\n"
                  "    print(items[3])\nIndexError: list index out of range")),
    ("code", gen("Refactor this JavaScript so it uses async/await instead of callbacks:\n\n"
                 "fs.readFile('a.txt', function (err, data) {\n  if (err) throw err;\n  console.log(data);\n});")),
    ("code", chat("How do I undo the last git commit but keep my changes?")),
    ("code", chat("Write a SQL query that returns the five customers with the highest total order value.")),
    ("code", chat("What's the difference between a list and a tuple in Python?")),
    ("code", chat("Implement a thread-safe LRU cache in Java with get and put in O(1).")),
    ("code", chat("My Dockerfile builds but the container exits immediately. CMD [\"npm\", \"start\"] - what's wrong?")),
    ("code", chat("Write a regex that matches a German postal code.")),
    ("code", chat("fn main() { let v = vec![1, 2, 3]; for i in v { println!(\"{}\", i); } }\n"
                  "Why can't I use v after this loop?")),
    ("code", chat("Schreibe eine Python-Funktion, die alle Primzahlen bis n mit dem Sieb des Eratosthenes findet.")),
    ("code", chat("Wie kann ich in Bash alle .log-Dateien älter als 7 Tage löschen?")),
    ("code", chat("Erkläre mir den Unterschied zwischen einer Klasse und einem Objekt in Java, mit Codebeispiel.")),
    ("code", chat("Écris une fonction JavaScript qui inverse une chaîne de caractères.")),
    ("code", chat("Add type hints and a docstring:\n\ndef merge(a, b):\n    return {**a, **b}",
                  system="You are a senior software engineer.")),
    ("code", chat("How can I make this React component re-render only when the `user` prop changes?")),
    ("code", chat("Write unit tests with pytest for a function parse_duration('1h30m') -> 5400.")),
    # -- math --------------------------------------------------------------------------------------------
    ("math", chat("What is 17 * 23 + 156 / 4?")),
    ("math", chat("Solve for x: 3x^2 - 12x + 9 = 0")),
    ("math", chat("What is the derivative of sin(x) * e^x?")),
    ("math", chat("Compute the integral of 1/(1+x^2) from 0 to 1.")),
    ("math", chat("If I invest 10,000 euros at 4% compound interest per year, how much will I have after 15 years?")),
    ("math", chat("Prove that the square root of 2 is irrational.")),
    ("math", chat("What is the probability of rolling at least one six in four throws of a fair die?")),
    ("math", chat("A triangle has sides 7, 24 and 25. What is its area?")),
    ("math", chat("Berechne die Ableitung von f(x) = x^3 - 4x + 2.")),
    ("math", chat("Löse das Gleichungssystem: 2x + y = 7 und x - y = 2.")),
    ("math", chat("Wie viel sind 15 Prozent von 240?")),
    ("math", gen("Find the eigenvalues of the matrix [[2, 1], [1, 2]].")),
    ("math", chat("Calcule la dérivée de ln(x^2 + 1).")),
    ("math", chat("What is the median of 3, 9, 4, 7, 12, 5?")),
    # -- reasoning ---------------------------------------------------------------------------------------
    ("reasoning", chat("All bloops are razzies and all razzies are lazzies. Are all bloops definitely lazzies? "
                       "Explain your reasoning.")),
    ("reasoning", chat("On an island, knights always tell the truth and knaves always lie. A says 'B is a knave'. "
                       "B says 'A and I are the same kind'. Who is what?")),
    ("reasoning", chat("Should our startup build its own auth system or use a hosted provider? Weigh the trade-offs.")),
    ("reasoning", chat("Why did the Roman Empire in the West collapse while the East survived for another thousand years?")),
    ("reasoning", chat("Compare nuclear and wind power in terms of cost, safety and land use, and conclude which "
                       "is better for a small country.")),
    ("reasoning", chat("What would happen to global shipping if the Suez Canal closed for a year? Think it through "
                       "step by step.")),
    ("reasoning", chat("A bat and a ball cost 1.10 in total. The bat costs 1.00 more than the ball. Explain why "
                       "the intuitive answer is wrong.")),
    ("reasoning", chat("Warum ist der Himmel blau, aber der Sonnenuntergang rot? Begründe es physikalisch.")),
    ("reasoning", chat("Vergleiche Homeoffice und Büroarbeit: Was sind die Vor- und Nachteile für ein kleines Team?")),
    ("reasoning", chat("Sollte ich mein Erspartes in ETFs oder in eine Eigentumswohnung stecken? Analysiere beide Optionen.")),
    ("reasoning", chat("Three boxes are labelled apples, oranges and mixed, and every label is wrong. You may take "
                       "one fruit from one box. How can you tell which box is which?")),
    ("reasoning", chat("What are the strongest arguments for and against a four-day work week?")),
    ("reasoning", chat("Pourquoi les taux d'intérêt élevés font-ils baisser l'inflation ? Analyse le mécanisme.")),
    # -- creative ----------------------------------------------------------------------------------------
    ("creative", chat("Write a haiku about autumn rain.")),
    ("creative", chat("Tell me a bedtime story about a dragon who is afraid of the dark.")),
    ("creative", chat("Write a short poem for my grandmother's 90th birthday.")),
    ("creative", chat("Come up with ten catchy names for a vegan bakery.")),
    ("creative", chat("Write the opening scene of a sci-fi novel set on a generation ship.")),
    ("creative", chat("Write song lyrics about leaving your hometown, in the style of a folk ballad.")),
    ("creative", chat("Schreibe ein Gedicht über den Herbst im Schwarzwald.")),
    ("creative", chat("Erfinde eine kurze Geschichte über einen Roboter, der Gärtner werden will.")),
    ("creative", chat("Schreib mir einen lustigen Reim für eine Geburtstagskarte.")),
    ("creative", gen("Écris un petit poème sur la mer.")),
    ("creative", chat("Escribe un cuento corto sobre un gato que viaja a la luna.")),
    ("creative", chat("Imagine you are a pirate captain and give a rousing speech to your crew before a storm.")),
    # -- translation -------------------------------------------------------------------------------------
    ("translation", chat("Translate 'Where is the train station?' into German.")),
    ("translation", chat("Übersetze bitte ins Englische: 'Ich freue mich auf unser Treffen nächste Woche.'")),
    ("translation", chat("How do you say 'thank you for your patience' in French?")),
    ("translation", chat("Translate this email to Spanish: Dear Maria, the meeting is moved to Friday at 10.")),
    ("translation", chat("Traduis en anglais : « Le chat dort sur le canapé. »")),
    ("translation", chat("Was heißt 'Feierabend' auf Englisch? Übersetze und erkläre kurz.")),
    # -- vision ------------------------------------------------------------------------------------------
    ("vision", vision_chat("What is in this picture?")),
    ("vision", vision_chat("Read the text on this receipt and list the items with prices.")),
    ("vision", vision_openai("Describe this image in one sentence.")),
    ("vision", vision_chat("Was siehst du auf diesem Bild?")),
    ("vision", {"model": "IntelliProxyLLM", "prompt": "Is there a cat in this photo?", "images": [PIXEL]}),
    ("vision", vision_openai("Write Python code that reproduces the chart in this screenshot.")),
    # -- general -----------------------------------------------------------------------------------------
    ("general", chat("Hi!")),
    ("general", chat("Hallo, wie geht's?")),
    ("general", chat("What's a good name for a golden retriever puppy?")),
    ("general", chat("Give me a recipe for a quick weeknight pasta.")),
    ("general", chat("What is the capital of Australia?")),
    ("general", chat("Summarize the main points of the French Revolution in three sentences.")),
    ("general", chat("Can you recommend some books similar to The Hobbit?")),
    ("general", chat("Was kann ich am Wochenende in München unternehmen?")),
    ("general", chat("Wie lange muss ein Ei kochen, damit es wachsweich ist?")),
    ("general", chat("Thanks, that helped a lot!")),
    ("general", chat("Draft a polite email asking my landlord to fix the heating.")),
    ("general", chat("What are some tips for sleeping better?")),
    ("general", chat("Quels sont les meilleurs endroits à visiter à Lyon ?")),
    ("general", chat("Who wrote Faust?")),
]

# Written after the rules were fixed and never used to tune them: the honest estimate of accuracy on new prompts.
HELD_OUT = [
    ("code", chat("My Flask app returns 405 on a POST to /login, what am I missing?")),
    ("code", chat("Convert this loop to a list comprehension: result = []\nfor x in xs:\n    if x > 0:\n        result.append(x*2)")),
    ("code", chat("How do I read a CSV file into a pandas DataFrame and drop empty rows?")),
    ("code", chat("Kannst du mir erklären, wie man in TypeScript ein Interface definiert?")),
    ("code", chat("What does `git rebase -i HEAD~3` do?")),
    ("code", chat("Write a Go HTTP handler that returns the current time as JSON.")),
    ("math", chat("What's 12% of 850?")),
    ("math", chat("Find x if 5x - 7 = 18.")),
    ("math", chat("How many ways can 5 people sit around a round table?")),
    ("math", chat("Was ist die Fläche eines Kreises mit Radius 4 cm?")),
    ("math", chat("Is 221 a prime number?")),
    ("reasoning", chat("Why do some startups fail even with a great product? Analyze the common causes.")),
    ("reasoning", chat("If it takes 5 machines 5 minutes to make 5 widgets, how long would 100 machines take "
                       "to make 100 widgets? Explain the logic.")),
    ("reasoning", chat("Wieso sinken die Preise für Solarmodule seit Jahren so stark?")),
    ("reasoning", chat("Which is better for a beginner photographer, a used full-frame camera or a new APS-C one? "
                       "Weigh it up.")),
    ("creative", chat("Write a limerick about a cat who loves lasagna.")),
    ("creative", chat("Invent a villain for my fantasy novel and describe their backstory.")),
    ("creative", chat("Schreibe ein kurzes Märchen über einen mutigen Igel.")),
    ("creative", chat("Compose a short rap verse about Monday mornings.")),
    ("translation", chat("Please translate 'good morning, how are you?' to Italian.")),
    ("translation", chat("Übersetze 'Das Wetter ist heute schön' ins Französische.")),
    ("translation", chat("What's the German word for 'squirrel'? Translate it and give the article.")),
    ("vision", vision_chat("Which breed is the dog in this photo?")),
    ("vision", vision_openai("Extract the table from this screenshot as CSV.")),
    ("general", chat("Good morning!")),
    ("general", chat("What should I pack for a weekend hiking trip in the Alps?")),
    ("general", chat("Wer war der erste Bundeskanzler der Bundesrepublik?")),
    ("general", chat("Give me three ideas for a healthy breakfast.")),
    ("general", chat("How tall is Mount Everest?")),
    ("general", chat("Write a short thank-you note to my colleague for covering my shift.")),
]
