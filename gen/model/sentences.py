"""The fixed sentence set of the accuracy report: 12 pairs of near-paraphrases (consecutive
entries) and 8 unrelated sentences, all short (at most 16 tokens with [CLS] and [SEP])."""

PAIRS = (
    ("A man is playing a guitar on the stage.", "Someone plays the guitar at a concert."),
    ("The cat is sleeping on the warm sofa.", "A cat naps on the cozy couch."),
    ("Heavy rain flooded the streets last night.", "Streets were flooded after a night of rain."),
    ("She bought fresh bread at the bakery.", "She got a fresh loaf from the baker."),
    ("The stock market fell sharply today.", "Share prices dropped steeply this afternoon."),
    ("Children are playing football in the park.", "Kids play soccer in the park."),
    ("The train to Paris was delayed by an hour.", "Our Paris train arrived one hour late."),
    ("He is cooking pasta for dinner.", "He makes spaghetti for his evening meal."),
    ("The doctor examined the patient carefully.", "The physician checked the patient thoroughly."),
    ("The new phone has a much better camera.", "This latest phone takes far better photos."),
    ("A dog is running across the beach.", "A puppy races along the sandy shore."),
    ("The meeting was moved to next Monday.", "We rescheduled the meeting for Monday."),
)

UNRELATED = (
    "Photosynthesis turns sunlight into chemical energy.",
    "The library closes at nine in the evening.",
    "Volcanoes can erupt without much warning.",
    "He forgot his umbrella at the office.",
    "The orchestra tuned their instruments.",
    "Quantum computers use qubits instead of bits.",
    "The bridge was painted bright red.",
    "My grandmother grows tomatoes in her garden.",
)

SENTENCES = tuple(s for pair in PAIRS for s in pair) + UNRELATED
