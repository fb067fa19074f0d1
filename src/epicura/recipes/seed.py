"""`epicura seed`: the demo accounts and official recipes, and synthetic recipes for benchmarks.

The demo set goes through the service layer (create, then publish), so it meets every rule a
recipe written through the API meets. Synthetic recipes are for volume: their rows are built in
Python (no ORM objects) and written in batches, one transaction per batch, with COPY on
PostgreSQL and Core `insert()` executemany on SQLite; each batch's search entries are rebuilt
with `repository.refresh_search`.
"""

from __future__ import annotations

import asyncio
import math
import random
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import orjson
from sqlalchemy import JSON, Table, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.auth import repository as auth_repository
from epicura.auth.models import ROLE_ADMIN, ROLE_USER, User
from epicura.auth.service import check_password_policy, normalise_email
from epicura.kit import audit, clock
from epicura.kit.ids import uuid7
from epicura.kit.runtime import Runtime
from epicura.recipes import repository, service
from epicura.recipes.demo_recipes import demo_recipes
from epicura.recipes.models import PUBLIC, PUBLISHED, Recipe, RecipeVersion
from epicura.recipes.schemas import RecipeCreate, VersionContent

ADMIN_EMAIL = "admin@epicura.local"
DEMO_EMAIL = "demo@epicura.local"
ADMIN_NAME = "Epicura Kitchen"
DEMO_NAME = "Demo Cook"
DEFAULT_BATCH = 2000
MIN_PASSWORD = 8  # registration's minimum

Json = dict[str, Any]


# --- accounts -----------------------------------------------------------------------------


@dataclass
class Account:
    """What seeding did to one account. `generated_password` is set only when this run created
    the account without a password given: it is shown once and stored nowhere in clear."""

    email: str
    created: bool
    password_changed: bool
    generated_password: str | None = None


def new_password() -> str:
    return secrets.token_urlsafe(15)  # 20 characters, 120 bits


async def ensure_account(
    rt: Runtime,
    session: AsyncSession,
    email: str,
    display_name: str,
    role: str,
    password: str | None,
) -> tuple[User, Account]:
    """The account `email`, created if missing (verified, active). An existing account keeps its
    password unless one is given that differs; an admin account is promoted if needed. Nothing
    changes when the account is already as asked."""
    email = normalise_email(email)
    if password is not None:
        if len(password) < MIN_PASSWORD:
            raise ValueError(f"passwords need at least {MIN_PASSWORD} characters")
        check_password_policy(password)
    user = await auth_repository.user_by_email(session, email)
    if user is None:
        generated = new_password() if password is None else None
        secret = generated if password is None else password
        assert secret is not None
        now = clock.utcnow()
        user = User(
            email=email,
            display_name=display_name,
            role=role,
            locale="en",
            timezone="UTC",
            email_verified=True,
            is_active=True,
            password_hash=await rt.hasher.hash(secret),
            created_at=now,
            updated_at=now,
        )
        session.add(user)
        await session.flush()
        audit.record(
            session,
            "seed.user.created",
            actor_type="system",
            target_type="user",
            target_id=user.id,
            role=role,
        )
        return user, Account(
            email, created=True, password_changed=True, generated_password=generated
        )
    changed = False
    if role == ROLE_ADMIN and user.role != ROLE_ADMIN:
        user.role = ROLE_ADMIN
        changed = True
    password_changed = False
    if password is not None:
        matches, _ = await rt.hasher.verify(password, user.password_hash)
        if not matches:
            user.password_hash = await rt.hasher.hash(password)
            password_changed = changed = True
    if changed:
        user.updated_at = clock.utcnow()
        await session.flush()
        audit.record(
            session,
            "seed.user.updated",
            actor_type="system",
            target_type="user",
            target_id=user.id,
            role=user.role,
            password_changed=password_changed,
        )
    return user, Account(email, created=False, password_changed=password_changed)


def describe(account: Account) -> str:
    """One line for the operator; the only place a generated password is ever shown."""
    if account.generated_password is not None:
        return (
            f"created {account.email} with password: {account.generated_password} "
            "(shown once; change it after signing in)"
        )
    if account.created:
        return f"created {account.email} with the given password"
    if account.password_changed:
        return f"{account.email} exists; password updated"
    return f"{account.email} exists; unchanged"


async def announce_changes(rt: Runtime) -> None:
    """Recipes changed outside a request: drop this instance's recipe caches and tell the
    others over the event bus (their list pages would otherwise miss the new recipes)."""
    from epicura.recipes import cache

    cache.caches(rt).on_change({})
    await rt.bus.publish(cache.CHANNEL, {})


# --- the demo set -------------------------------------------------------------------------


@dataclass
class DemoReport:
    admin: Account
    demo: Account
    created: list[str] = field(default_factory=list)  # titles of recipes created by this run
    existing: int = 0  # demo recipes already there (left as they are)


async def seed_demo(
    rt: Runtime, *, admin_password: str | None = None, demo_password: str | None = None
) -> DemoReport:
    """The admin, the demo user and the official demo recipes, in one transaction. Idempotent:
    a recipe is recognised by its title among the admin's official recipes."""
    async with rt.db.transaction() as session:
        admin, admin_account = await ensure_account(
            rt, session, ADMIN_EMAIL, ADMIN_NAME, ROLE_ADMIN, admin_password
        )
        _, demo_account = await ensure_account(
            rt, session, DEMO_EMAIL, DEMO_NAME, ROLE_USER, demo_password
        )
        report = DemoReport(admin=admin_account, demo=demo_account)
        present = set(
            (
                await session.scalars(
                    select(Recipe.title).where(
                        Recipe.owner_id == admin.id, Recipe.is_official.is_(True)
                    )
                )
            ).all()
        )
        for body in demo_recipes():
            if body["title"] in present:
                report.existing += 1
                continue
            create = RecipeCreate.model_validate(
                {**body, "visibility": PUBLIC, "is_official": True}
            )
            recipe = await service.create(session, admin, create)
            await service.publish(session, recipe, admin)
            report.created.append(body["title"])
    if report.created:
        await announce_changes(rt)
    return report


# --- synthetic recipes --------------------------------------------------------------------
#
# Bodies are built directly in the canonical form `service.content_json` produces (every field
# present, quantities as decimal strings, floats as floats, `total_minutes` derived), because
# validating 100,000 of them through pydantic would take minutes. `seed_synthetic` checks a
# sample against `VersionContent` and refuses to go on if the two ever disagree.

ADJECTIVES = (
    "creamy",
    "rustic",
    "spiced",
    "golden",
    "silky",
    "hearty",
    "zesty",
    "smoky",
    "herby",
    "roasted",
    "velvety",
    "fragrant",
    "sunny",
    "warming",
    "crispy",
    "tangy",
    "mellow",
    "bright",
    "garden",
    "midweek",
)
MAINS = (
    "pumpkin",
    "lentil",
    "chickpea",
    "tomato",
    "carrot",
    "mushroom",
    "spinach",
    "chicken",
    "beef",
    "salmon",
    "cod",
    "prawn",
    "tofu",
    "aubergine",
    "courgette",
    "sweet potato",
    "leek",
    "cauliflower",
    "broccoli",
    "red pepper",
    "white bean",
    "pea",
    "sweetcorn",
    "potato",
    "beetroot",
    "parsnip",
    "fennel",
    "barley",
    "quinoa",
    "rice",
    "celeriac",
    "kale",
    "turkey",
    "lamb",
    "haddock",
    "black bean",
    "squash",
    "asparagus",
)
FRUITS = (
    "apple",
    "pear",
    "plum",
    "cherry",
    "raspberry",
    "blueberry",
    "apricot",
    "peach",
    "mango",
    "banana",
    "rhubarb",
    "fig",
    "orange",
    "lemon",
    "coconut",
    "chocolate",
    "hazelnut",
    "almond",
)
FLAVOURS = (
    "garlic",
    "ginger",
    "smoked paprika",
    "cumin",
    "coriander",
    "thyme",
    "rosemary",
    "basil",
    "chilli",
    "lime",
    "miso",
    "sesame",
    "saffron",
    "turmeric",
    "tarragon",
    "dill",
    "mint",
    "sumac",
    "harissa",
    "sage",
    "oregano",
    "lemongrass",
    "fennel seed",
    "mustard",
)
SWEET_FLAVOURS = (
    "vanilla",
    "cinnamon",
    "cardamom",
    "honey",
    "maple",
    "nutmeg",
    "star anise",
    "orange blossom",
    "brown sugar",
    "rose",
)
CUISINES = (
    "italian",
    "french",
    "indian",
    "thai",
    "mexican",
    "spanish",
    "moroccan",
    "japanese",
    "greek",
    "lebanese",
    "british",
    "german",
    "chinese",
    "vietnamese",
    "american",
    "korean",
    "hungarian",
    "swedish",
    "turkish",
    "peruvian",
)
TAGS = (
    "vegetarian",
    "vegan",
    "gluten-free",
    "dairy-free",
    "quick",
    "family",
    "budget",
    "batch-cooking",
    "spicy",
    "comfort",
    "healthy",
    "weeknight",
    "kids",
    "summer",
    "winter",
    "freezer-friendly",
    "high-protein",
    "one-pot",
    "party",
    "brunch",
)
OPENERS = ("A", "An easy", "A generous", "A reliable", "A simple", "A cheerful", "A cosy")
FINISHES = (
    "ready in well under an hour",
    "that reheats beautifully",
    "for busy evenings",
    "that the whole family will enjoy",
    "worth making a double batch of",
    "with very little washing up",
    "to serve with crusty bread",
    "that keeps for three days in the fridge",
)
PROFILES = ["epicura-1/rev-a"]
SAMPLE_FIRST, SAMPLE_EVERY = 200, 100


def _cap(words: str) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in words.split(" "))


def _ing(
    key: str, name: str, quantity: int | None, unit: str | None, optional: bool = False
) -> Json:
    return {
        "key": key,
        "name": name,
        "quantity": None if quantity is None else str(quantity),
        "unit": unit,
        "note": None,
        "optional": optional,
        "group": None,
    }


def _step(
    action: str, title: str, params: Json, keys: tuple[str, ...] = (), instruction: str = ""
) -> Json:
    return {
        "title": title,
        "instruction": instruction,
        "ingredient_keys": list(keys),
        "start": "immediate",
        "action": action,
        "params": params,
    }


def _heat(title: str, temperature: float, seconds: int, speed: float | None = None) -> Json:
    return _step(
        "heat",
        title,
        {
            "temperature_c": float(temperature),
            "duration_s": seconds,
            "speed": None if speed is None else float(speed),
        },
    )


def _motion(
    action: str,
    title: str,
    speed: float,
    seconds: int,
    temperature: float | None = None,
    reverse: bool = False,
) -> Json:
    return _step(
        action,
        title,
        {
            "speed": float(speed),
            "duration_s": seconds,
            "temperature_c": None if temperature is None else float(temperature),
            "direction": "reverse" if reverse else "forward",
        },
    )


def _weigh(title: str, grams: int, key: str) -> Json:
    return _step("weigh", title, {"target_weight_g": float(grams)}, (key,))


def _await(title: str, prompt: str, keys: tuple[str, ...]) -> Json:
    return _step("await_user", title, {"prompt": prompt}, keys)


def _rest(title: str, seconds: int) -> Json:
    return _step("rest", title, {"duration_s": seconds})


def _manual(title: str, instruction: str, keys: tuple[str, ...] = ()) -> Json:
    return _step("manual", title, {}, keys, instruction)


Made = tuple[str, str, list[Json], list[Json]]  # category, dish noun, ingredients, steps


def _aromatics(r: random.Random, flavour: str) -> tuple[list[Json], list[Json]]:
    ingredients = [
        _ing("onion", "Onion", r.choice((1, 1, 2)), "piece"),
        _ing("garlic", "Garlic", r.randint(1, 4), "clove"),
        _ing(
            "oil",
            r.choice(("Olive oil", "Sunflower oil", "Rapeseed oil")),
            r.choice((1, 2, 3)),
            "tbsp",
        ),
        _ing("flavour", _cap(flavour), r.choice((1, 2)), r.choice(("tsp", "tbsp"))),
    ]
    steps = [
        _await("Add the aromatics", "Add the onion and garlic", ("onion", "garlic")),
        _motion("blend", "Chop", r.choice((4, 5, 6)), r.randint(3, 6)),
        _await("Add the oil", f"Add the oil and {flavour}", ("oil", "flavour")),
        _heat("Sauté", r.choice((110, 115, 120)), r.randint(3, 7) * 60, 1),
    ]
    return ingredients, steps


def _soup(r: random.Random, main: str, flavour: str) -> Made:
    noun = r.choice(("soup", "velouté", "broth", "chowder", "bisque"))
    ingredients, steps = _aromatics(r, flavour)
    stock = r.randrange(500, 1001, 100)
    ingredients += [
        _ing("main", _cap(main), r.randrange(400, 801, 50), "g"),
        _ing("stock", r.choice(("Vegetable stock", "Chicken stock", "Water")), stock, "ml"),
        _ing("salt", "Salt", None, None),
    ]
    steps += [
        _await("Add the main ingredient", f"Add the {main}", ("main",)),
        _weigh("Pour in the stock", stock, "stock"),
        _heat("Simmer", r.choice((95, 98, 100)), r.randrange(15, 41, 5) * 60, 1),
        _motion("blend", "Blend", r.choice((8, 9, 10)), r.randrange(30, 91, 10)),
        _manual("Season", "Season to taste and serve hot.", ("salt",)),
    ]
    return "soup", noun, ingredients, steps


def _stew(r: random.Random, main: str, flavour: str) -> Made:
    noun = r.choice(("stew", "curry", "ragout", "tagine", "casserole", "braise"))
    ingredients, steps = _aromatics(r, flavour)
    ingredients += [
        _ing("main", _cap(main), r.randrange(400, 801, 50), "g"),
        _ing("tomatoes", "Chopped tomatoes", 400, "g"),
        _ing(
            "liquid",
            r.choice(("Stock", "Coconut milk", "Red wine", "Water")),
            r.randrange(150, 401, 50),
            "ml",
        ),
        _ing(
            "herbs",
            r.choice(("Parsley", "Coriander", "Chives", "Basil")),
            1,
            "handful",
            optional=True,
        ),
    ]
    steps += [
        _await("Add the main ingredient", f"Add the {main}", ("main",)),
        _motion("stir", "Brown", 1, r.randint(4, 8) * 60, 120, reverse=True),
        _await("Add the liquids", "Add the tomatoes and liquid", ("tomatoes", "liquid")),
        _motion(
            "stir",
            "Simmer",
            r.choice((0.5, 1)),
            r.randrange(20, 91, 5) * 60,
            r.choice((95, 98, 100)),
            reverse=True,
        ),
        _rest("Rest", r.randint(3, 10) * 60),
        _manual("Serve", "Scatter with herbs and serve.", ("herbs",)),
    ]
    return "main", noun, ingredients, steps


def _bread(r: random.Random, main: str, flavour: str) -> Made:
    noun = r.choice(("loaf", "rolls", "flatbread", "focaccia", "buns", "plait"))
    water = r.randrange(260, 341, 10)
    flour = r.randrange(400, 601, 50)
    ingredients = [
        _ing("water", "Water", water, "ml"),
        _ing("yeast", "Dried yeast", r.choice((4, 7)), "g"),
        _ing(
            "flour",
            r.choice(("Strong white flour", "Wholemeal flour", "Spelt flour", "'00' flour")),
            flour,
            "g",
        ),
        _ing("main", _cap(main), r.randrange(50, 151, 25), "g"),
        _ing("flavour", _cap(flavour), 1, "tsp"),
        _ing("salt", "Salt", r.choice((8, 10)), "g"),
    ]
    steps = [
        _weigh("Weigh the water", water, "water"),
        _await("Add the yeast", "Add the yeast", ("yeast",)),
        _heat("Warm", 37, 120, 2),
        _weigh("Weigh the flour", flour, "flour"),
        _await("Add the rest", f"Add the {main}, {flavour} and salt", ("main", "flavour", "salt")),
        _motion("knead", "Knead", 4, r.randint(2, 5) * 60),
        _heat("Prove", 37, r.randrange(30, 91, 10) * 60),
        _manual(
            "Shape and bake",
            f"Shape, rise for 30 minutes and bake at {r.choice((200, 210, 220))} °C.",
        ),
    ]
    return "bread", noun, ingredients, steps


def _sauce(r: random.Random, main: str, flavour: str) -> Made:
    noun = r.choice(("sauce", "pesto", "dip", "relish", "chutney", "salsa"))
    grams = r.randrange(200, 501, 50)
    ingredients = [
        _ing("main", _cap(main), grams, "g"),
        _ing("flavour", _cap(flavour), r.choice((1, 2)), "tsp"),
        _ing("oil", "Olive oil", r.randrange(30, 121, 10), "ml"),
        _ing("acid", r.choice(("Lemon juice", "Lime juice", "Cider vinegar")), 1, "tbsp"),
        _ing("salt", "Salt", 1, "pinch"),
    ]
    steps = [
        _weigh("Weigh the main ingredient", grams, "main"),
        _await("Add the flavour", f"Add the {flavour}", ("flavour",)),
        _motion(
            "stir",
            "Cook down",
            1,
            r.randrange(5, 21, 5) * 60,
            r.choice((100, 110, 120)),
            reverse=True,
        ),
        _await("Add the rest", "Add the oil, acid and salt", ("oil", "acid", "salt")),
        _motion("blend", "Blend", r.choice((5, 6, 7, 8)), r.randrange(10, 41, 5)),
        _manual("Store", "Spoon into a jar and chill."),
    ]
    return "sauce", noun, ingredients, steps


def _dessert(r: random.Random, fruit: str, flavour: str) -> Made:
    noun = r.choice(("pudding", "custard", "compote", "mousse", "jam", "fool"))
    milk = r.randrange(300, 701, 50)
    ingredients = [
        _ing("fruit", _cap(fruit), r.randrange(200, 501, 50), "g"),
        _ing("milk", r.choice(("Whole milk", "Oat milk", "Coconut milk")), milk, "ml"),
        _ing("sugar", "Sugar", r.randrange(40, 121, 10), "g"),
        _ing("flavour", _cap(flavour), 1, "tsp"),
        _ing("eggs", "Egg yolks", r.randint(2, 5), "piece"),
    ]
    steps = [
        _await("Add the fruit", f"Add the {fruit}", ("fruit",)),
        _motion("blend", "Chop", r.choice((4, 5, 6)), r.randint(3, 8)),
        _weigh("Weigh the milk", milk, "milk"),
        _await("Add the rest", f"Add the sugar, {flavour} and yolks", ("sugar", "flavour", "eggs")),
        _motion("stir", "Cook gently", 4, r.randrange(6, 13) * 60, r.choice((80, 85, 90))),
        _rest("Chill", r.randrange(30, 121, 30) * 60),
        _manual("Serve", "Serve warm or chilled."),
    ]
    return "dessert", noun, ingredients, steps


SAVOURY = (_soup, _stew, _bread, _sauce)


def _nutrition(r: random.Random) -> Json | None:
    if r.random() < 0.6:
        return None
    return {
        "kcal": float(r.randrange(120, 700, 10)),
        "protein_g": float(r.randrange(2, 40)),
        "fat_g": float(r.randrange(1, 35)),
        "carbs_g": float(r.randrange(5, 80)),
        "fiber_g": None,
        "sugar_g": None,
        "salt_g": None,
    }


def _pick(r: random.Random, pool: tuple[str, ...], k: int) -> list[str]:
    """`k` distinct items (like `random.sample`, whose ABC type check costs more than this)."""
    left = list(pool)
    return [left.pop(r.randrange(len(left))) for _ in range(k)]


def synthetic_contents(seed_value: int, count: int) -> Iterator[Json]:
    """`count` recipe contents in canonical form, the same for the same seed (a shorter run is
    a prefix of a longer one)."""
    r = random.Random(seed_value)  # noqa: S311 - benchmark data, not secrets
    for _ in range(count):
        if r.random() < 0.2:
            subject, extra = r.choice(FRUITS), r.choice(SWEET_FLAVOURS)
            category, noun, ingredients, steps = _dessert(r, subject, extra)
        else:
            subject, extra = r.choice(MAINS), r.choice(FLAVOURS)
            category, noun, ingredients, steps = r.choice(SAVOURY)(r, subject, extra)
        adjective = r.choice(ADJECTIVES)
        cuisine = r.choice(CUISINES)
        prep = r.randrange(5, 31, 5)
        seconds = sum(int(step["params"].get("duration_s") or 0) for step in steps)
        yield {
            "title": f"{_cap(f'{adjective} {subject} {noun}')} with {_cap(extra)}",
            "description": f"{r.choice(OPENERS)} {adjective} {noun} of {subject} and {extra}, "
            f"{r.choice(FINISHES)}. Inspired by {_cap(cuisine)} cooking.",
            "language": "en",
            "servings": r.choice((2, 4, 4, 4, 6, 8)),
            "prep_minutes": prep,
            "total_minutes": prep + math.ceil(seconds / 60),
            "difficulty": r.choice(("easy", "easy", "medium", "hard")),
            "cuisine": cuisine,
            "category": category,
            "tags": _pick(r, TAGS, r.randint(1, 4)),
            "accessories": [],
            "ingredients": ingredients,
            "steps": steps,
            "nutrition": _nutrition(r),
            "images": [],
            "requires": {"min_firmware": None, "capabilities": [], "profiles": list(PROFILES)},
        }


class SyntheticDrift(RuntimeError):
    """A generated content is not what `VersionContent` makes of it (the schema changed)."""


def check_canonical(content: Json) -> None:
    """Raise unless `content` is valid and already exactly what the service would store."""
    stored = service.content_json(VersionContent.model_validate(content))
    if stored != content or service.content_sha256(stored) != service.content_sha256(content):
        raise SyntheticDrift(
            f"synthetic recipe {content['title']!r} differs from its "
            "validated form; update seed.py's templates"
        )


@dataclass
class SyntheticReport:
    admin: Account
    recipe_ids: list[uuid.UUID]


def _search_text(content: Json) -> str:
    """`repository.search_text_of`, without its per-character accent folding when the text is
    plain ASCII (folding is then just lower-casing): a third of the build time otherwise."""
    plain = f"{content['title']} {repository.keywords_of(content)}"
    return plain.lower() if plain.isascii() else repository.search_text_of(content)


def _rows(content: Json, owner_id: uuid.UUID, at: datetime) -> tuple[Json, Json]:
    recipe_id = uuid7()
    head = {
        "id": recipe_id,
        "owner_id": owner_id,
        "visibility": PUBLIC,
        "is_official": False,
        "status": PUBLISHED,
        "current_version": 1,
        "title": content["title"],
        "description": content["description"],
        "language": content["language"],
        "tags": content["tags"],
        "category": content["category"],
        "cuisine": content["cuisine"],
        "difficulty": content["difficulty"],
        "total_minutes": content["total_minutes"],
        "servings": content["servings"],
        "cover_image_id": None,
        "profiles": content["requires"]["profiles"],
        "min_firmware": content["requires"]["min_firmware"],
        "search_text": _search_text(content),
        "rating_avg": None,
        "rating_count": 0,
        "cooked_count": 0,
        "favorite_count": 0,
        "created_at": at,
        "updated_at": at,
        "published_at": at,
        "archived_at": None,
    }
    version = {
        "recipe_id": recipe_id,
        "version": 1,
        "content": content,
        "sha256": service.content_sha256(content),
        "author_id": owner_id,
        "summary": "Generated",
        "created_at": at,
    }
    return head, version


RECIPES = cast(Table, Recipe.__table__)
VERSIONS = cast(Table, RecipeVersion.__table__)


@dataclass
class _Batch:
    first: int  # index of its first recipe in the run
    ids: list[uuid.UUID]
    heads: list[Any]  # dicts for Core insert, or tuples for PostgreSQL's COPY
    versions: list[Any]


def _columns(table: Table) -> tuple[list[str], set[str]]:
    names = [column.name for column in table.columns]
    return names, {column.name for column in table.columns if isinstance(column.type, JSON)}


def _records(table: Table, rows: list[Json]) -> list[tuple[Any, ...]]:
    """Rows as COPY records in the table's column order; JSON columns as JSON text (the form
    SQLAlchemy's asyncpg codecs take)."""
    names, json_columns = _columns(table)
    return [
        tuple(
            orjson.dumps(row[name]).decode() if name in json_columns else row[name]
            for name in names
        )
        for row in rows
    ]


def _build_batch(
    contents: Iterator[Json],
    first: int,
    size: int,
    owner_id: uuid.UUID,
    start: datetime,
    copy: bool,
) -> _Batch:
    heads: list[Json] = []
    versions: list[Json] = []
    for index in range(first, first + size):
        content = next(contents)
        if index < SAMPLE_FIRST or index % SAMPLE_EVERY == 0:
            check_canonical(content)
        head, version = _rows(content, owner_id, start + timedelta(seconds=index + 1))
        heads.append(head)
        versions.append(version)
    ids = [head["id"] for head in heads]
    if copy:
        return _Batch(first, ids, _records(RECIPES, heads), _records(VERSIONS, versions))
    return _Batch(first, ids, heads, versions)


async def _write_batch(rt: Runtime, batch: _Batch, copy: bool) -> None:
    async with rt.db.transaction() as session:
        if copy:
            # Bulk data that can be generated again: no need to wait for the WAL flush.
            await session.execute(text("SET LOCAL synchronous_commit = off"))
            raw = await (await session.connection()).get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            for table, records in ((RECIPES, batch.heads), (VERSIONS, batch.versions)):
                await driver.copy_records_to_table(
                    table.name, records=records, columns=_columns(table)[0]
                )
        else:
            await session.execute(insert(Recipe), batch.heads)
            await session.execute(insert(RecipeVersion), batch.versions)
        await repository.refresh_search(session, batch.ids)


async def seed_synthetic(
    rt: Runtime,
    count: int,
    *,
    seed_value: int = 0,
    batch_size: int = DEFAULT_BATCH,
    admin_password: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> SyntheticReport:
    """`count` public, published recipes owned by the admin (created if missing), written in
    batches of `batch_size`, each batch in its own transaction with its search entries.
    `on_progress(n)` is called after each batch with the number of recipes it stored.

    Batches are built in order in a worker thread while the database writes earlier ones:
    through COPY and two connections at once on PostgreSQL, so both cores stay busy; through
    one connection on SQLite (one writer at a time). A failure leaves the batches already
    committed in place (each is complete: rows, versions and search entries)."""
    async with rt.db.transaction() as session:
        admin, account = await ensure_account(
            rt, session, ADMIN_EMAIL, ADMIN_NAME, ROLE_ADMIN, admin_password
        )
    owner_id = admin.id
    copy = rt.db.engine.dialect.name == "postgresql"
    writers = 2 if copy else 1
    # Spread over the last `count` seconds, oldest first, so "newest" has a stable order.
    start = clock.utcnow() - timedelta(seconds=count)
    contents = synthetic_contents(seed_value, count)
    queue: asyncio.Queue[_Batch | None] = asyncio.Queue(maxsize=writers)
    written: dict[int, list[uuid.UUID]] = {}

    async def produce() -> None:
        first = 0
        while first < count:
            size = min(batch_size, count - first)
            await queue.put(
                await asyncio.to_thread(_build_batch, contents, first, size, owner_id, start, copy)
            )
            first += size
        for _ in range(writers):
            await queue.put(None)

    async def write() -> None:
        while (batch := await queue.get()) is not None:
            await _write_batch(rt, batch, copy)
            written[batch.first] = batch.ids
            if on_progress is not None:
                on_progress(len(batch.ids))

    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(produce())
            for _ in range(writers):
                tasks.create_task(write())
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    finally:
        await announce_changes(rt)
    if copy:
        async with rt.db.transaction() as session:
            await session.execute(text("ANALYZE recipes"))
            await session.execute(text("ANALYZE recipe_versions"))
    return SyntheticReport(
        admin=account, recipe_ids=[i for first in sorted(written) for i in written[first]]
    )
