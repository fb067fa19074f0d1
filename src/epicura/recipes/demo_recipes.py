"""The official demo recipes loaded by `epicura seed --demo`, written for Epicura.

Every recipe is a `VersionContent` body for the default appliance, `epicura-1 / rev-a`: a 2.2 l
heated bowl with a blade, 37–180 °C, speeds 0–10, at most 12 h per step and 5 kg on the scale.
Step programs follow how the appliance is used: weigh into the bowl, ask the cook to add what the
next step needs (`await_user`), then chop, sauté, simmer, knead or steam with the lid on. Work that
happens away from the appliance (an oven, a frying pan, plating) is a `manual` step.

The helpers below only build plain dicts; validation is `VersionContent`'s job.
"""

from __future__ import annotations

from typing import Any

MIN = 60
HOUR = 3600

Json = dict[str, Any]


# --- builders -----------------------------------------------------------------------------


def ing(
    key: str,
    name: str,
    quantity: float | None = None,
    unit: str | None = None,
    *,
    note: str | None = None,
    optional: bool = False,
    group: str | None = None,
) -> Json:
    item: Json = {"key": key, "name": name, "quantity": quantity, "unit": unit}
    if note:
        item["note"] = note
    if optional:
        item["optional"] = True
    if group:
        item["group"] = group
    return item


def _step(
    action: str,
    title: str,
    params: Json,
    keys: tuple[str, ...] | list[str],
    instruction: str,
    start: str,
) -> Json:
    return {
        "title": title,
        "action": action,
        "params": params,
        "ingredient_keys": list(keys),
        "instruction": instruction,
        "start": start,
    }


def heat(
    title: str,
    temperature_c: float,
    duration_s: int,
    speed: float | None = None,
    *,
    keys: tuple[str, ...] = (),
    instruction: str = "",
    start: str = "immediate",
) -> Json:
    params: Json = {"temperature_c": temperature_c, "duration_s": duration_s}
    if speed is not None:
        params["speed"] = speed
    return _step("heat", title, params, keys, instruction, start)


def _motion(
    action: str,
    title: str,
    speed: float,
    duration_s: int,
    temperature_c: float | None,
    reverse: bool,
    keys: tuple[str, ...],
    instruction: str,
    start: str,
) -> Json:
    params: Json = {
        "speed": speed,
        "duration_s": duration_s,
        "direction": "reverse" if reverse else "forward",
    }
    if temperature_c is not None:
        params["temperature_c"] = temperature_c
    return _step(action, title, params, keys, instruction, start)


def stir(
    title: str,
    speed: float,
    duration_s: int,
    temperature_c: float | None = None,
    *,
    reverse: bool = False,
    keys: tuple[str, ...] = (),
    instruction: str = "",
    start: str = "immediate",
) -> Json:
    return _motion(
        "stir", title, speed, duration_s, temperature_c, reverse, keys, instruction, start
    )


def blend(
    title: str,
    speed: float,
    duration_s: int,
    temperature_c: float | None = None,
    *,
    reverse: bool = False,
    keys: tuple[str, ...] = (),
    instruction: str = "",
    start: str = "immediate",
) -> Json:
    return _motion(
        "blend", title, speed, duration_s, temperature_c, reverse, keys, instruction, start
    )


def knead(
    title: str,
    duration_s: int,
    speed: float = 4,
    *,
    keys: tuple[str, ...] = (),
    instruction: str = "",
    start: str = "immediate",
) -> Json:
    return _motion("knead", title, speed, duration_s, None, False, keys, instruction, start)


def steam(
    title: str,
    duration_s: int,
    temperature_c: float | None = None,
    *,
    keys: tuple[str, ...] = (),
    instruction: str = "",
    start: str = "immediate",
) -> Json:
    params: Json = {"duration_s": duration_s}
    if temperature_c is not None:
        params["temperature_c"] = temperature_c
    return _step("steam", title, params, keys, instruction, start)


def weigh(title: str, grams: float, *, keys: tuple[str, ...] = (), instruction: str = "") -> Json:
    return _step("weigh", title, {"target_weight_g": grams}, keys, instruction, "immediate")


def add(title: str, prompt: str, *, keys: tuple[str, ...] = (), instruction: str = "") -> Json:
    """An `await_user` step: the appliance waits until the cook confirms."""
    return _step("await_user", title, {"prompt": prompt}, keys, instruction, "immediate")


def rest(
    title: str,
    duration_s: int,
    *,
    keys: tuple[str, ...] = (),
    instruction: str = "",
    start: str = "immediate",
) -> Json:
    return _step("rest", title, {"duration_s": duration_s}, keys, instruction, start)


def manual(title: str, instruction: str, *, keys: tuple[str, ...] = ()) -> Json:
    return _step("manual", title, {}, keys, instruction, "immediate")


def nutrition(
    kcal: float,
    protein_g: float,
    fat_g: float,
    carbs_g: float,
    fiber_g: float,
    sugar_g: float,
    salt_g: float,
) -> Json:
    return {
        "kcal": kcal,
        "protein_g": protein_g,
        "fat_g": fat_g,
        "carbs_g": carbs_g,
        "fiber_g": fiber_g,
        "sugar_g": sugar_g,
        "salt_g": salt_g,
    }


def recipe(
    title: str,
    description: str,
    *,
    servings: int,
    prep_minutes: int,
    difficulty: str,
    cuisine: str | None,
    category: str,
    tags: list[str],
    ingredients: list[Json],
    steps: list[Json],
    accessories: tuple[str, ...] = (),
    nutrition: Json | None = None,
) -> Json:
    return {
        "title": title,
        "description": description,
        "language": "en",
        "servings": servings,
        "prep_minutes": prep_minutes,
        "difficulty": difficulty,
        "cuisine": cuisine,
        "category": category,
        "tags": tags,
        "accessories": list(accessories),
        "ingredients": ingredients,
        "steps": steps,
        "nutrition": nutrition,
        "requires": {"profiles": ["epicura-1/rev-a"]},
    }


# --- the recipes --------------------------------------------------------------------------


def _soups() -> list[Json]:
    return [
        recipe(
            "Smoky Red Pepper and Tomato Soup",
            "Jarred roasted peppers and smoked paprika give this weeknight soup a deep, "
            "barbecue-like warmth without lighting a grill. Blended silky and ready in half an "
            "hour.",
            servings=4,
            prep_minutes=5,
            difficulty="easy",
            cuisine="spanish",
            category="soup",
            tags=["vegan", "gluten-free", "quick", "weeknight"],
            ingredients=[
                ing("onion", "Onion", 1, "piece", note="halved"),
                ing("garlic", "Garlic", 2, "clove"),
                ing("olive_oil", "Olive oil", 2, "tbsp"),
                ing("peppers", "Roasted red peppers", 300, "g", note="from a jar, drained"),
                ing("tomatoes", "Chopped tomatoes", 400, "g"),
                ing("paprika", "Smoked paprika", 1, "tsp"),
                ing("stock", "Vegetable stock", 500, "ml"),
                ing("salt", "Salt", None, None),
            ],
            steps=[
                add("Add the aromatics", "Add the onion and garlic", keys=("onion", "garlic")),
                blend("Chop", 5, 5, instruction="Scrape the sides down with the spatula."),
                add("Add the oil", "Add the olive oil", keys=("olive_oil",)),
                heat("Soften the onion", 120, 4 * MIN, 1),
                add(
                    "Add the peppers",
                    "Add the peppers, tomatoes and paprika",
                    keys=("peppers", "tomatoes", "paprika"),
                ),
                weigh("Pour in the stock", 500, keys=("stock",)),
                heat("Simmer", 100, 20 * MIN, 1),
                blend("Purée", 8, 60, instruction="Hold the lid; the soup is hot."),
                manual(
                    "Season and serve",
                    "Taste, add salt, and serve with crusty bread.",
                    keys=("salt",),
                ),
            ],
            nutrition=nutrition(140, 4, 7, 15, 4, 10, 1.1),
        ),
        recipe(
            "Leek and Potato Soup with Chives",
            "A soft, comforting bistro classic: leeks sweated slowly in butter, simmered with "
            "floury potatoes and blended to velvet. Serve hot, or chill it for a summer lunch.",
            servings=4,
            prep_minutes=10,
            difficulty="easy",
            cuisine="french",
            category="soup",
            tags=["vegetarian", "gluten-free", "comfort", "budget"],
            ingredients=[
                ing("leeks", "Leeks", 300, "g", note="white and pale green parts, sliced"),
                ing("butter", "Butter", 30, "g"),
                ing("potatoes", "Floury potatoes", 400, "g", note="peeled, in 3 cm pieces"),
                ing("stock", "Vegetable stock", 800, "ml"),
                ing("cream", "Single cream", 100, "ml", optional=True),
                ing("chives", "Chives", 1, "bunch", note="snipped"),
                ing("salt", "Salt and pepper", None, None),
            ],
            steps=[
                add("Add the leeks", "Add the leeks", keys=("leeks",)),
                blend("Slice finer", 4, 4),
                add("Add the butter", "Add the butter", keys=("butter",)),
                stir(
                    "Sweat the leeks",
                    1,
                    6 * MIN,
                    110,
                    reverse=True,
                    instruction="Leave the measuring cup off so the steam can escape.",
                ),
                add("Add the potatoes", "Add the potatoes", keys=("potatoes",)),
                weigh("Pour in the stock", 800, keys=("stock",)),
                heat("Simmer", 100, 22 * MIN, 1),
                add("Add the cream", "Add the cream if you like a richer soup", keys=("cream",)),
                blend("Blend smooth", 8, 50),
                manual(
                    "Finish",
                    "Season, ladle into bowls and scatter with chives.",
                    keys=("salt", "chives"),
                ),
            ],
            nutrition=nutrition(210, 5, 10, 25, 4, 4, 1.0),
        ),
        recipe(
            "Carrot, Ginger and Orange Soup",
            "Bright and gently spicy: carrots simmered with fresh ginger, finished with orange "
            "juice and zest. A sunny bowl that freezes beautifully.",
            servings=4,
            prep_minutes=10,
            difficulty="easy",
            cuisine="british",
            category="soup",
            tags=["vegan", "gluten-free", "freezer-friendly", "healthy"],
            ingredients=[
                ing("onion", "Onion", 1, "piece", note="halved"),
                ing("ginger", "Fresh ginger", 25, "g", note="peeled"),
                ing("oil", "Sunflower oil", 1, "tbsp"),
                ing("carrots", "Carrots", 600, "g", note="in chunks"),
                ing("stock", "Vegetable stock", 700, "ml"),
                ing("orange", "Orange", 1, "piece", note="zest and juice"),
                ing("salt", "Salt", None, None),
            ],
            steps=[
                add("Add onion and ginger", "Add the onion and ginger", keys=("onion", "ginger")),
                blend("Chop", 5, 5),
                add("Add the oil", "Add the oil", keys=("oil",)),
                heat("Sauté", 120, 3 * MIN, 1),
                add("Add the carrots", "Add the carrots", keys=("carrots",)),
                blend("Chop the carrots", 5, 6),
                weigh("Pour in the stock", 700, keys=("stock",)),
                heat("Simmer", 100, 20 * MIN, 1),
                add("Add the orange", "Add the orange zest and juice", keys=("orange",)),
                blend("Purée", 9, 60),
                manual(
                    "Serve", "Season to taste and serve with a swirl of yoghurt.", keys=("salt",)
                ),
            ],
        ),
        recipe(
            "Chicken Noodle Soup with Star Anise",
            "A fragrant, clear broth in the style of a Vietnamese street-stall soup: toasted "
            "whole spices, gently poached chicken thighs, rice noodles and a pile of fresh "
            "herbs at the table.",
            servings=4,
            prep_minutes=15,
            difficulty="medium",
            cuisine="vietnamese",
            category="soup",
            tags=["dairy-free", "family", "comfort"],
            accessories=("simmering basket",),
            ingredients=[
                ing("star_anise", "Star anise", 3, "piece"),
                ing("cinnamon", "Cinnamon stick", 1, "piece"),
                ing("ginger", "Fresh ginger", 30, "g", note="sliced"),
                ing("onion", "Onion", 1, "piece", note="quartered"),
                ing("stock", "Chicken stock", 1200, "ml"),
                ing("chicken", "Chicken thighs", 400, "g", note="boneless, skinless"),
                ing("fish_sauce", "Fish sauce", 2, "tbsp"),
                ing("sugar", "Sugar", 1, "tsp"),
                ing("noodles", "Flat rice noodles", 200, "g"),
                ing("sprouts", "Bean sprouts", 100, "g"),
                ing("herbs", "Coriander, mint and Thai basil", 1, "handful"),
                ing("lime", "Lime", 1, "piece", note="in wedges"),
                ing("chilli", "Red chilli", 1, "piece", optional=True, note="sliced"),
            ],
            steps=[
                add(
                    "Spices into the basket",
                    "Put the star anise, cinnamon and ginger in the simmering basket and insert it",
                    keys=("star_anise", "cinnamon", "ginger"),
                ),
                heat("Toast the spices", 120, 3 * MIN),
                add("Add the onion", "Add the onion around the basket", keys=("onion",)),
                weigh("Pour in the stock", 1200, keys=("stock",)),
                heat("Bring to a simmer", 100, 10 * MIN, 0.5),
                add("Add the chicken", "Add the chicken thighs", keys=("chicken",)),
                stir("Poach the chicken", 0.5, 20 * MIN, 95, reverse=True),
                manual(
                    "Shred the chicken",
                    "Lift out the chicken and the basket. Shred the meat "
                    "with two forks. Soak the noodles in boiling water for 5 minutes.",
                    keys=("noodles",),
                ),
                add(
                    "Season the broth", "Add the fish sauce and sugar", keys=("fish_sauce", "sugar")
                ),
                heat("Reheat the broth", 100, 3 * MIN, 0.5),
                manual(
                    "Assemble",
                    "Divide noodles, chicken and sprouts between bowls, ladle "
                    "the broth over and serve with herbs, lime and chilli.",
                    keys=("sprouts", "herbs", "lime", "chilli"),
                ),
            ],
            nutrition=nutrition(360, 27, 6, 48, 2, 4, 2.6),
        ),
        recipe(
            "Miso Soup with Tofu and Wakame",
            "A light kombu and shiitake broth, steeped below a simmer so it stays clean and "
            "sweet, with silken tofu and miso stirred in at the very end.",
            servings=4,
            prep_minutes=5,
            difficulty="easy",
            cuisine="japanese",
            category="soup",
            tags=["vegan", "quick", "light"],
            ingredients=[
                ing("water", "Water", 1000, "ml"),
                ing("kombu", "Kombu", 10, "g"),
                ing("shiitake", "Dried shiitake mushrooms", 4, "piece"),
                ing("wakame", "Dried wakame", 5, "g"),
                ing("tofu", "Silken tofu", 200, "g", note="in 1 cm cubes"),
                ing("miso", "White miso paste", 60, "g"),
                ing("spring_onions", "Spring onions", 2, "piece", note="thinly sliced"),
            ],
            steps=[
                weigh("Weigh the water", 1000, keys=("water",)),
                add(
                    "Add kombu and shiitake",
                    "Add the kombu and shiitake",
                    keys=("kombu", "shiitake"),
                ),
                heat(
                    "Steep",
                    60,
                    20 * MIN,
                    instruction="Kept well below boiling so the kombu stays sweet.",
                ),
                manual(
                    "Remove the kombu",
                    "Lift out the kombu. Slice the shiitake and return them to the broth.",
                ),
                heat("Heat the broth", 90, 5 * MIN, 0.5),
                add("Add tofu and wakame", "Add the wakame and the tofu", keys=("wakame", "tofu")),
                stir("Warm through", 0.5, 2 * MIN, 80, reverse=True),
                add(
                    "Add the miso",
                    "Whisk the miso with a ladle of broth and pour it in",
                    keys=("miso",),
                ),
                stir("Stir in the miso", 0.5, 20, reverse=True),
                manual(
                    "Serve", "Serve at once, topped with spring onions.", keys=("spring_onions",)
                ),
            ],
            nutrition=nutrition(85, 6, 3, 7, 2, 2, 2.2),
        ),
        recipe(
            "Chilled Andalusian Gazpacho",
            "No stove, no fuss: ripe tomatoes, cucumber and a little day-old bread blended with "
            "good olive oil and sherry vinegar, then chilled until ice cold.",
            servings=4,
            prep_minutes=15,
            difficulty="easy",
            cuisine="spanish",
            category="soup",
            tags=["vegan", "no-cook", "summer"],
            ingredients=[
                ing("bread", "Day-old white bread", 50, "g", note="crusts removed"),
                ing("garlic", "Garlic", 1, "clove"),
                ing("tomatoes", "Ripe tomatoes", 800, "g", note="quartered"),
                ing("cucumber", "Cucumber", 150, "g", note="peeled"),
                ing("green_pepper", "Green pepper", 1, "piece", note="deseeded"),
                ing("vinegar", "Sherry vinegar", 2, "tbsp"),
                ing("salt", "Salt", 1, "tsp"),
                ing("olive_oil", "Extra virgin olive oil", 60, "ml"),
                ing("water", "Cold water", 150, "ml"),
            ],
            steps=[
                add("Add bread and garlic", "Add the bread and garlic", keys=("bread", "garlic")),
                blend("Crumb the bread", 7, 5),
                add(
                    "Add the vegetables",
                    "Add the tomatoes, cucumber and pepper",
                    keys=("tomatoes", "cucumber", "green_pepper"),
                ),
                weigh("Add vinegar and salt", 40, keys=("vinegar", "salt")),
                blend("Blend", 10, 90),
                add(
                    "Add the oil",
                    "Pour the olive oil and water through the lid while the blade turns",
                    keys=("olive_oil", "water"),
                ),
                blend("Emulsify", 4, 30),
                rest("Chill", 2 * HOUR, instruction="Refrigerate in a covered jug."),
                manual("Serve", "Stir, check the seasoning and serve with diced cucumber."),
            ],
            nutrition=nutrition(190, 3, 15, 13, 3, 7, 1.4),
        ),
    ]


def _mains() -> list[Json]:
    return [
        recipe(
            "Golden Red Lentil Dal with Spinach",
            "Everyday dal tempered with cumin and turmeric, made creamy with coconut milk and "
            "brightened with spinach and a squeeze of lime. Naturally vegan and very forgiving.",
            servings=4,
            prep_minutes=10,
            difficulty="easy",
            cuisine="indian",
            category="main",
            tags=["vegan", "gluten-free", "budget", "batch-cooking"],
            ingredients=[
                ing("onion", "Onion", 1, "piece", note="halved"),
                ing("garlic", "Garlic", 3, "clove"),
                ing("ginger", "Fresh ginger", 20, "g"),
                ing("chilli", "Green chilli", 1, "piece", optional=True),
                ing("oil", "Sunflower oil", 2, "tbsp"),
                ing("cumin", "Cumin seeds", 1, "tsp"),
                ing("turmeric", "Ground turmeric", 1, "tsp"),
                ing("garam_masala", "Garam masala", 1, "tsp"),
                ing("lentils", "Red lentils", 250, "g", note="rinsed"),
                ing("tomatoes", "Chopped tomatoes", 200, "g"),
                ing("water", "Water", 800, "ml"),
                ing("coconut_milk", "Coconut milk", 200, "ml"),
                ing("spinach", "Baby spinach", 100, "g"),
                ing("lime", "Lime", 0.5, "piece"),
                ing("salt", "Salt", 1, "tsp"),
            ],
            steps=[
                add(
                    "Add the aromatics",
                    "Add the onion, garlic, ginger and chilli",
                    keys=("onion", "garlic", "ginger", "chilli"),
                ),
                blend("Chop", 5, 5),
                add("Add oil and cumin", "Add the oil and cumin seeds", keys=("oil", "cumin")),
                stir("Fry gently", 1, 4 * MIN, 120, reverse=True),
                add(
                    "Add the spices",
                    "Add the turmeric and garam masala",
                    keys=("turmeric", "garam_masala"),
                ),
                heat("Bloom the spices", 120, 1 * MIN, 1),
                weigh("Weigh in the lentils", 250, keys=("lentils",)),
                add(
                    "Add tomatoes and water",
                    "Add the tomatoes, water and salt",
                    keys=("tomatoes", "water", "salt"),
                ),
                stir("Simmer", 1, 25 * MIN, 100, reverse=True),
                add(
                    "Add coconut and spinach",
                    "Add the coconut milk and spinach",
                    keys=("coconut_milk", "spinach"),
                ),
                stir("Wilt the spinach", 1, 3 * MIN, 95, reverse=True),
                manual(
                    "Serve",
                    "Squeeze over the lime and serve with rice or flatbread.",
                    keys=("lime",),
                ),
            ],
            nutrition=nutrition(330, 16, 13, 38, 8, 6, 1.4),
        ),
        recipe(
            "Mushroom Risotto with Thyme",
            "A hands-off risotto: the bowl does the stirring while you set the table. Chestnut "
            "mushrooms, white wine and fresh thyme, finished with plenty of Parmesan.",
            servings=4,
            prep_minutes=10,
            difficulty="medium",
            cuisine="italian",
            category="main",
            tags=["vegetarian", "comfort", "dinner-party"],
            ingredients=[
                ing("parmesan", "Parmesan", 60, "g", note="in cubes"),
                ing("shallots", "Shallots", 2, "piece"),
                ing("garlic", "Garlic", 1, "clove"),
                ing("butter", "Butter", 30, "g"),
                ing("olive_oil", "Olive oil", 1, "tbsp"),
                ing("mushrooms", "Chestnut mushrooms", 250, "g", note="sliced"),
                ing("rice", "Arborio rice", 300, "g"),
                ing("wine", "Dry white wine", 100, "ml"),
                ing("stock", "Hot vegetable stock", 900, "ml"),
                ing("thyme", "Thyme", 4, "sprig", note="leaves only"),
                ing("salt", "Salt and pepper", None, None),
            ],
            steps=[
                add("Add the Parmesan", "Add the Parmesan", keys=("parmesan",)),
                blend("Grate the cheese", 10, 10),
                manual("Set the cheese aside", "Tip the cheese into a small bowl."),
                add(
                    "Add shallots and garlic",
                    "Add the shallots and garlic",
                    keys=("shallots", "garlic"),
                ),
                blend("Chop", 5, 4),
                add(
                    "Add butter and oil",
                    "Add the butter and olive oil",
                    keys=("butter", "olive_oil"),
                ),
                heat("Soften", 120, 3 * MIN, 1),
                add("Add the mushrooms", "Add the mushrooms", keys=("mushrooms",)),
                stir("Cook the mushrooms", 1, 5 * MIN, 120, reverse=True),
                weigh("Weigh in the rice", 300, keys=("rice",)),
                stir("Toast the rice", 1, 2 * MIN, 120, reverse=True),
                add("Add the wine", "Pour in the wine", keys=("wine",)),
                stir("Reduce", 1, 1 * MIN, 120, reverse=True),
                add(
                    "Add stock and thyme",
                    "Pour in the hot stock and add the thyme",
                    keys=("stock", "thyme"),
                ),
                stir(
                    "Cook the risotto",
                    1,
                    16 * MIN,
                    100,
                    reverse=True,
                    instruction="Put the basket on the lid instead of the measuring cup.",
                ),
                add(
                    "Add the cheese", "Add the grated Parmesan back to the bowl", keys=("parmesan",)
                ),
                stir("Mantecare", 1, 30, reverse=True),
                rest("Rest", 2 * MIN),
                manual("Serve", "Season and serve in warm bowls.", keys=("salt",)),
            ],
            nutrition=nutrition(470, 14, 14, 66, 3, 3, 1.6),
        ),
        recipe(
            "Green Curry with Chicken and Thai Basil",
            "A fresh green paste blitzed from chillies, lemongrass and coriander, fried until "
            "fragrant and simmered with coconut milk, chicken and crisp green beans.",
            servings=4,
            prep_minutes=15,
            difficulty="medium",
            cuisine="thai",
            category="main",
            tags=["spicy", "gluten-free", "dairy-free"],
            ingredients=[
                ing("shallots", "Shallots", 2, "piece", group="For the paste"),
                ing("garlic", "Garlic", 3, "clove", group="For the paste"),
                ing("galangal", "Galangal or ginger", 20, "g", group="For the paste"),
                ing(
                    "lemongrass",
                    "Lemongrass",
                    1,
                    "piece",
                    note="outer leaves removed",
                    group="For the paste",
                ),
                ing("chillies", "Green bird's eye chillies", 4, "piece", group="For the paste"),
                ing(
                    "coriander",
                    "Coriander",
                    1,
                    "bunch",
                    note="stalks and leaves",
                    group="For the paste",
                ),
                ing("lime", "Lime", 1, "piece", note="zest and juice", group="For the paste"),
                ing("ground_coriander", "Ground coriander", 1, "tsp", group="For the paste"),
                ing("oil", "Sunflower oil", 2, "tbsp"),
                ing("coconut_milk", "Coconut milk", 400, "ml"),
                ing("chicken", "Chicken thighs", 500, "g", note="in strips"),
                ing("beans", "Green beans", 150, "g", note="halved"),
                ing("fish_sauce", "Fish sauce", 2, "tbsp"),
                ing("sugar", "Palm sugar", 1, "tsp"),
                ing("basil", "Thai basil", 1, "handful"),
            ],
            steps=[
                add(
                    "Add the paste ingredients",
                    "Add everything for the paste",
                    keys=(
                        "shallots",
                        "garlic",
                        "galangal",
                        "lemongrass",
                        "chillies",
                        "coriander",
                        "lime",
                        "ground_coriander",
                    ),
                ),
                blend(
                    "Make the paste",
                    8,
                    30,
                    instruction="Scrape down and repeat if the paste is still coarse.",
                ),
                add("Add the oil", "Add the oil", keys=("oil",)),
                heat("Fry the paste", 120, 4 * MIN, 1),
                add("Add the coconut milk", "Pour in the coconut milk", keys=("coconut_milk",)),
                heat("Bring to a simmer", 100, 3 * MIN, 1),
                add(
                    "Add chicken and beans",
                    "Add the chicken and green beans",
                    keys=("chicken", "beans"),
                ),
                stir("Poach", 1, 14 * MIN, 100, reverse=True),
                add(
                    "Season",
                    "Add the fish sauce, sugar and basil",
                    keys=("fish_sauce", "sugar", "basil"),
                ),
                stir("Stir through", 1, 30, reverse=True),
                manual("Serve", "Serve with steamed jasmine rice."),
            ],
            nutrition=nutrition(420, 29, 29, 10, 3, 5, 2.0),
        ),
        recipe(
            "Slow-Simmered Beef Ragù",
            "Two hours of gentle bubbling turn minced beef, soffritto and red wine into a deep, "
            "glossy sauce for tagliatelle or lasagne. The bowl stirs in reverse so the meat "
            "stays in tender crumbs.",
            servings=6,
            prep_minutes=15,
            difficulty="hard",
            cuisine="italian",
            category="main",
            tags=["batch-cooking", "dairy-free", "sunday", "freezer-friendly"],
            accessories=("splash guard",),
            ingredients=[
                ing("carrot", "Carrot", 1, "piece", note="in chunks"),
                ing("celery", "Celery stick", 1, "piece"),
                ing("onion", "Onion", 1, "piece", note="halved"),
                ing("garlic", "Garlic", 2, "clove"),
                ing("olive_oil", "Olive oil", 3, "tbsp"),
                ing("beef", "Minced beef", 500, "g"),
                ing("tomato_paste", "Tomato paste", 2, "tbsp"),
                ing("wine", "Red wine", 150, "ml"),
                ing("tomatoes", "Chopped tomatoes", 400, "g"),
                ing("stock", "Beef stock", 200, "ml"),
                ing("bay", "Bay leaves", 2, "leaf"),
                ing("salt", "Salt", 1, "tsp"),
            ],
            steps=[
                add(
                    "Add the soffritto",
                    "Add the carrot, celery, onion and garlic",
                    keys=("carrot", "celery", "onion", "garlic"),
                ),
                blend("Chop finely", 5, 5),
                add("Add the oil", "Add the olive oil", keys=("olive_oil",)),
                heat("Soften the soffritto", 120, 7 * MIN, 1),
                add("Add the beef", "Add the beef, broken into pieces", keys=("beef",)),
                stir("Brown the beef", 1, 8 * MIN, 120, reverse=True),
                add(
                    "Add paste and wine",
                    "Add the tomato paste and wine",
                    keys=("tomato_paste", "wine"),
                ),
                stir("Reduce the wine", 1, 3 * MIN, 120, reverse=True),
                add(
                    "Add tomatoes and stock",
                    "Add the tomatoes, stock, bay and salt, then put the splash guard on the lid",
                    keys=("tomatoes", "stock", "bay", "salt"),
                ),
                stir("Slow simmer", 0.5, 2 * HOUR, 98, reverse=True),
                rest("Rest", 10 * MIN),
                manual("Serve", "Remove the bay leaves and toss with freshly cooked pasta."),
            ],
            nutrition=nutrition(380, 24, 22, 12, 3, 8, 1.5),
        ),
        recipe(
            "Chicken Tikka Masala",
            "Tender chicken in a spiced tomato and cream sauce, blended smooth before the meat "
            "goes in. Milder than it looks and a guaranteed family favourite.",
            servings=4,
            prep_minutes=15,
            difficulty="medium",
            cuisine="indian",
            category="main",
            tags=["family", "gluten-free", "spicy"],
            ingredients=[
                ing("onion", "Onion", 1, "piece", note="large, quartered"),
                ing("garlic", "Garlic", 3, "clove"),
                ing("ginger", "Fresh ginger", 20, "g"),
                ing("chilli", "Red chilli", 1, "piece"),
                ing("oil", "Sunflower oil", 2, "tbsp"),
                ing("garam_masala", "Garam masala", 2, "tsp"),
                ing("cumin", "Ground cumin", 1, "tsp"),
                ing("paprika", "Paprika", 1, "tsp"),
                ing("turmeric", "Ground turmeric", 0.5, "tsp"),
                ing("tomatoes", "Chopped tomatoes", 400, "g"),
                ing("chicken", "Chicken thighs", 600, "g", note="in 3 cm pieces"),
                ing("cream", "Double cream", 150, "ml"),
                ing("salt", "Salt", 1, "tsp"),
                ing("coriander", "Coriander", 1, "handful"),
            ],
            steps=[
                add(
                    "Add the aromatics",
                    "Add the onion, garlic, ginger and chilli",
                    keys=("onion", "garlic", "ginger", "chilli"),
                ),
                blend("Chop", 5, 5),
                add("Add the oil", "Add the oil", keys=("oil",)),
                heat("Fry the onion", 120, 5 * MIN, 1),
                add(
                    "Add the spices",
                    "Add the garam masala, cumin, paprika and turmeric",
                    keys=("garam_masala", "cumin", "paprika", "turmeric"),
                ),
                heat("Toast the spices", 120, 1 * MIN, 1),
                add("Add the tomatoes", "Add the tomatoes and salt", keys=("tomatoes", "salt")),
                heat("Cook the sauce", 100, 10 * MIN, 1),
                blend("Blend the sauce", 8, 30, instruction="Increase the speed gradually."),
                add("Add the chicken", "Add the chicken", keys=("chicken",)),
                stir("Simmer", 1, 15 * MIN, 100, reverse=True),
                add("Add the cream", "Pour in the cream", keys=("cream",)),
                stir("Finish", 1, 2 * MIN, 90, reverse=True),
                manual(
                    "Serve",
                    "Scatter with coriander and serve with rice and naan.",
                    keys=("coriander",),
                ),
            ],
            nutrition=nutrition(450, 34, 29, 12, 3, 7, 1.8),
        ),
        recipe(
            "Chickpea, Sweet Potato and Apricot Tagine",
            "Warm ras el hanout, sweet potato and chickpeas with dried apricots for little "
            "bursts of sweetness. Serve with couscous and a scattering of toasted almonds.",
            servings=4,
            prep_minutes=15,
            difficulty="easy",
            cuisine="moroccan",
            category="main",
            tags=["vegan", "gluten-free", "batch-cooking"],
            ingredients=[
                ing("onion", "Red onion", 1, "piece", note="halved"),
                ing("garlic", "Garlic", 2, "clove"),
                ing("oil", "Olive oil", 2, "tbsp"),
                ing("ras_el_hanout", "Ras el hanout", 2, "tsp"),
                ing("cinnamon", "Ground cinnamon", 0.5, "tsp"),
                ing("sweet_potato", "Sweet potato", 400, "g", note="in 2 cm cubes"),
                ing("chickpeas", "Cooked chickpeas", 400, "g", note="drained"),
                ing("tomatoes", "Chopped tomatoes", 400, "g"),
                ing("apricots", "Dried apricots", 80, "g", note="halved"),
                ing("stock", "Vegetable stock", 300, "ml"),
                ing("coriander", "Coriander", 1, "handful"),
                ing("almonds", "Flaked almonds", 30, "g", optional=True, note="toasted"),
            ],
            steps=[
                add("Add onion and garlic", "Add the onion and garlic", keys=("onion", "garlic")),
                blend("Chop", 5, 4),
                add("Add the oil", "Add the olive oil", keys=("oil",)),
                heat("Soften", 120, 4 * MIN, 1),
                add(
                    "Add the spices",
                    "Add the ras el hanout and cinnamon",
                    keys=("ras_el_hanout", "cinnamon"),
                ),
                heat("Toast the spices", 120, 1 * MIN, 1),
                add(
                    "Add the rest",
                    "Add the sweet potato, chickpeas, tomatoes and apricots",
                    keys=("sweet_potato", "chickpeas", "tomatoes", "apricots"),
                ),
                weigh("Pour in the stock", 300, keys=("stock",)),
                stir("Simmer", 1, 25 * MIN, 100, reverse=True),
                rest("Rest", 5 * MIN),
                manual(
                    "Serve",
                    "Top with coriander and almonds; serve with couscous.",
                    keys=("coriander", "almonds"),
                ),
            ],
            nutrition=nutrition(340, 11, 9, 55, 12, 20, 1.2),
        ),
        recipe(
            "Smoky Black Bean Chili",
            "A meat-free chili with real depth from chipotle, cumin and a spoonful of cocoa. "
            "Top with avocado, lime and soured cream, or keep it vegan with coconut yoghurt.",
            servings=4,
            prep_minutes=10,
            difficulty="easy",
            cuisine="mexican",
            category="main",
            tags=["vegan", "gluten-free", "spicy", "weeknight"],
            ingredients=[
                ing("onion", "Onion", 1, "piece", note="halved"),
                ing("garlic", "Garlic", 2, "clove"),
                ing("pepper", "Red pepper", 1, "piece", note="in chunks"),
                ing("oil", "Olive oil", 2, "tbsp"),
                ing("cumin", "Ground cumin", 2, "tsp"),
                ing("chipotle", "Chipotle chilli flakes", 1, "tsp"),
                ing("oregano", "Dried oregano", 1, "tsp"),
                ing("cocoa", "Cocoa powder", 1, "tsp"),
                ing("beans", "Cooked black beans", 500, "g", note="drained"),
                ing("tomatoes", "Chopped tomatoes", 400, "g"),
                ing("corn", "Sweetcorn", 150, "g"),
                ing("stock", "Vegetable stock", 150, "ml"),
                ing("salt", "Salt", 1, "tsp"),
                ing("lime", "Lime", 1, "piece"),
            ],
            steps=[
                add(
                    "Add the vegetables",
                    "Add the onion, garlic and pepper",
                    keys=("onion", "garlic", "pepper"),
                ),
                blend("Chop", 5, 4),
                add("Add the oil", "Add the oil", keys=("oil",)),
                heat("Soften", 120, 5 * MIN, 1),
                add(
                    "Add the spices",
                    "Add the cumin, chipotle, oregano and cocoa",
                    keys=("cumin", "chipotle", "oregano", "cocoa"),
                ),
                heat("Toast the spices", 120, 1 * MIN, 1),
                weigh("Weigh in the beans", 500, keys=("beans",)),
                add(
                    "Add the rest",
                    "Add the tomatoes, sweetcorn, stock and salt",
                    keys=("tomatoes", "corn", "stock", "salt"),
                ),
                stir("Simmer", 1, 20 * MIN, 100, reverse=True),
                manual(
                    "Serve",
                    "Squeeze in the lime and serve with rice or tortilla chips.",
                    keys=("lime",),
                ),
            ],
            nutrition=nutrition(300, 14, 8, 42, 15, 9, 1.5),
        ),
        recipe(
            "Steamed Salmon with Ginger Greens and Rice",
            "A whole dinner in one go: jasmine rice cooks in the bowl while salmon and pak choi "
            "steam above it under a sticky ginger, soy and sesame glaze.",
            servings=4,
            prep_minutes=15,
            difficulty="medium",
            cuisine="chinese",
            category="main",
            tags=["fish", "healthy", "one-pot", "dairy-free"],
            accessories=("simmering basket", "steaming tray"),
            ingredients=[
                ing("ginger", "Fresh ginger", 20, "g", group="For the glaze"),
                ing("garlic", "Garlic", 2, "clove", group="For the glaze"),
                ing("spring_onions", "Spring onions", 3, "piece", group="For the glaze"),
                ing("soy", "Soy sauce", 3, "tbsp", group="For the glaze"),
                ing("sesame_oil", "Toasted sesame oil", 1, "tsp", group="For the glaze"),
                ing("honey", "Honey", 1, "tsp", group="For the glaze"),
                ing("water", "Water", 1000, "ml"),
                ing("rice", "Jasmine rice", 300, "g", note="rinsed"),
                ing("salt", "Salt", 1, "tsp"),
                ing("salmon", "Salmon fillets", 4, "piece", note="about 130 g each"),
                ing("pak_choi", "Pak choi", 300, "g", note="halved lengthways"),
            ],
            steps=[
                add(
                    "Add the aromatics",
                    "Add the ginger, garlic and spring onions",
                    keys=("ginger", "garlic", "spring_onions"),
                ),
                blend("Chop", 5, 4),
                manual(
                    "Make the glaze",
                    "Scrape into a small bowl and mix with the soy, sesame oil and honey.",
                    keys=("soy", "sesame_oil", "honey"),
                ),
                weigh("Weigh the water", 1000, keys=("water",)),
                add(
                    "Add the rice",
                    "Insert the simmering basket with the rice and salt",
                    keys=("rice", "salt"),
                ),
                manual(
                    "Prepare the tray",
                    "Lay the salmon on the steaming tray, spoon over "
                    "the glaze and tuck the pak choi around it.",
                    keys=("salmon", "pak_choi"),
                ),
                add("Put the tray on", "Put the steaming tray on the lid"),
                steam("Steam", 22 * MIN, 120),
                rest("Rest", 2 * MIN),
                manual("Serve", "Fluff the rice and serve with the salmon and greens."),
            ],
            nutrition=nutrition(520, 32, 17, 60, 2, 3, 2.4),
        ),
        recipe(
            "Hungarian Beef Goulash",
            "Chunks of beef braised with a generous amount of sweet paprika, caraway and "
            "peppers until they fall apart, with potatoes added for the last half hour.",
            servings=4,
            prep_minutes=20,
            difficulty="hard",
            cuisine="hungarian",
            category="main",
            tags=["comfort", "dairy-free", "winter"],
            ingredients=[
                ing("onions", "Onions", 2, "piece", note="quartered"),
                ing("garlic", "Garlic", 2, "clove"),
                ing("oil", "Sunflower oil", 2, "tbsp"),
                ing("beef", "Braising beef", 600, "g", note="in 3 cm cubes"),
                ing("paprika", "Sweet paprika", 2, "tbsp"),
                ing("caraway", "Caraway seeds", 1, "tsp"),
                ing("tomato_paste", "Tomato paste", 1, "tbsp"),
                ing("pepper", "Red pepper", 1, "piece", note="in strips"),
                ing("stock", "Beef stock", 500, "ml"),
                ing("marjoram", "Dried marjoram", 1, "tsp"),
                ing("potatoes", "Waxy potatoes", 300, "g", note="in 2 cm cubes"),
                ing("salt", "Salt", 1, "tsp"),
            ],
            steps=[
                add(
                    "Add onions and garlic", "Add the onions and garlic", keys=("onions", "garlic")
                ),
                blend("Chop", 5, 4),
                add("Add the oil", "Add the oil", keys=("oil",)),
                heat("Soften the onions", 120, 6 * MIN, 1),
                add("Add the beef", "Add the beef", keys=("beef",)),
                stir("Seal the beef", 1, 8 * MIN, 120, reverse=True),
                add(
                    "Add the paprika",
                    "Add the paprika, caraway and tomato paste",
                    keys=("paprika", "caraway", "tomato_paste"),
                ),
                stir(
                    "Cook the paprika",
                    1,
                    1 * MIN,
                    100,
                    reverse=True,
                    instruction="Kept below frying heat so the paprika does not turn bitter.",
                ),
                add(
                    "Add the liquid",
                    "Add the pepper, stock, marjoram and salt",
                    keys=("pepper", "stock", "marjoram", "salt"),
                ),
                stir("Braise", 0.5, 60 * MIN, 98, reverse=True),
                add("Add the potatoes", "Add the potatoes", keys=("potatoes",)),
                stir("Braise with potatoes", 0.5, 30 * MIN, 98, reverse=True),
                rest("Rest", 10 * MIN),
                manual("Serve", "Serve in deep bowls with bread."),
            ],
            nutrition=nutrition(430, 36, 17, 30, 5, 7, 1.7),
        ),
        recipe(
            "Spiced Tomato Shakshuka",
            "A peppery, cumin-scented tomato sauce made in the bowl, then finished in a pan "
            "with eggs poached right in it. Bring the pan to the table with plenty of bread.",
            servings=4,
            prep_minutes=10,
            difficulty="medium",
            cuisine="middle eastern",
            category="breakfast",
            tags=["vegetarian", "gluten-free", "brunch"],
            ingredients=[
                ing("onion", "Onion", 1, "piece", note="halved"),
                ing("garlic", "Garlic", 2, "clove"),
                ing("peppers", "Red peppers", 2, "piece", note="in strips"),
                ing("oil", "Olive oil", 2, "tbsp"),
                ing("cumin", "Ground cumin", 1, "tsp"),
                ing("paprika", "Sweet paprika", 1, "tsp"),
                ing("chilli_flakes", "Chilli flakes", 0.5, "tsp"),
                ing("tomatoes", "Chopped tomatoes", 800, "g"),
                ing("salt", "Salt", 1, "tsp"),
                ing("eggs", "Eggs", 6, "piece"),
                ing("feta", "Feta", 80, "g", optional=True, note="crumbled"),
                ing("parsley", "Parsley", 1, "handful"),
            ],
            steps=[
                add("Add onion and garlic", "Add the onion and garlic", keys=("onion", "garlic")),
                blend("Chop", 5, 4),
                add("Add oil and peppers", "Add the oil and peppers", keys=("oil", "peppers")),
                stir("Soften", 1, 8 * MIN, 120, reverse=True),
                add(
                    "Add the spices",
                    "Add the cumin, paprika and chilli flakes",
                    keys=("cumin", "paprika", "chilli_flakes"),
                ),
                heat("Toast the spices", 120, 1 * MIN, 1),
                add("Add the tomatoes", "Add the tomatoes and salt", keys=("tomatoes", "salt")),
                stir("Reduce the sauce", 1, 15 * MIN, 100, reverse=True),
                manual(
                    "Poach the eggs",
                    "Pour the sauce into a wide pan, make six hollows, "
                    "crack in the eggs, cover and cook on low heat for 6 to 8 minutes.",
                    keys=("eggs",),
                ),
                manual("Serve", "Scatter with feta and parsley.", keys=("feta", "parsley")),
            ],
            nutrition=nutrition(250, 13, 15, 15, 4, 11, 1.6),
        ),
    ]


def _sauces_and_dips() -> list[Json]:
    return [
        recipe(
            "Silky Hummus with Lemon and Cumin",
            "Ultra-smooth hummus thanks to a long blend and a splash of ice-cold water. Drizzle "
            "with your best olive oil and a pinch of paprika.",
            servings=6,
            prep_minutes=5,
            difficulty="easy",
            cuisine="lebanese",
            category="dip",
            tags=["vegan", "gluten-free", "quick", "party"],
            ingredients=[
                ing("garlic", "Garlic", 1, "clove"),
                ing("chickpeas", "Cooked chickpeas", 480, "g", note="drained"),
                ing("tahini", "Tahini", 80, "g"),
                ing("lemon", "Lemon", 1, "piece", note="juiced"),
                ing("cumin", "Ground cumin", 0.5, "tsp"),
                ing("salt", "Salt", 1, "tsp"),
                ing("water", "Ice-cold water", 60, "ml"),
                ing("olive_oil", "Olive oil", 2, "tbsp"),
                ing("paprika", "Paprika", 1, "pinch"),
            ],
            steps=[
                add("Add the garlic", "Add the garlic", keys=("garlic",)),
                blend("Chop the garlic", 7, 3),
                weigh("Weigh in the chickpeas", 480, keys=("chickpeas",)),
                add(
                    "Add the flavourings",
                    "Add the tahini, lemon juice, cumin and salt",
                    keys=("tahini", "lemon", "cumin", "salt"),
                ),
                blend("Blend", 5, 60),
                add(
                    "Add the water", "Scrape down the bowl and add the cold water", keys=("water",)
                ),
                blend("Whip smooth", 7, 60),
                manual(
                    "Serve",
                    "Spread in a shallow dish, drizzle with oil and dust with paprika.",
                    keys=("olive_oil", "paprika"),
                ),
            ],
            nutrition=nutrition(210, 7, 13, 16, 5, 1, 0.9),
        ),
        recipe(
            "Basil and Toasted Pine Nut Pesto",
            "Toasting the pine nuts first gives this pesto a rounder, nuttier flavour. Short "
            "pulses keep the basil bright green.",
            servings=6,
            prep_minutes=5,
            difficulty="easy",
            cuisine="italian",
            category="sauce",
            tags=["vegetarian", "gluten-free", "quick"],
            ingredients=[
                ing("pine_nuts", "Pine nuts", 40, "g"),
                ing("parmesan", "Parmesan", 50, "g", note="in cubes"),
                ing("pecorino", "Pecorino", 20, "g", note="in cubes"),
                ing("garlic", "Garlic", 1, "clove"),
                ing("basil", "Basil leaves", 60, "g"),
                ing("olive_oil", "Extra virgin olive oil", 120, "ml"),
                ing("salt", "Salt", 1, "pinch"),
            ],
            steps=[
                add("Add the pine nuts", "Add the pine nuts", keys=("pine_nuts",)),
                stir("Toast", 1, 4 * MIN, 120, reverse=True),
                manual("Cool the nuts", "Tip the nuts onto a plate to cool."),
                add(
                    "Add the cheeses",
                    "Add the Parmesan and pecorino",
                    keys=("parmesan", "pecorino"),
                ),
                blend("Grate", 10, 10),
                add(
                    "Add nuts and garlic",
                    "Add the toasted pine nuts and garlic",
                    keys=("pine_nuts", "garlic"),
                ),
                blend("Chop", 7, 5),
                add(
                    "Add basil and oil",
                    "Add the basil, olive oil and salt",
                    keys=("basil", "olive_oil", "salt"),
                ),
                blend("Blend briefly", 5, 12),
                manual("Store", "Spoon into a jar and cover with a thin layer of oil."),
            ],
        ),
        recipe(
            "Smooth Béchamel Sauce",
            "Lump-free white sauce every time: everything goes in cold and the bowl whisks it "
            "while it thickens. The base for lasagne, gratins and croque monsieur.",
            servings=6,
            prep_minutes=2,
            difficulty="easy",
            cuisine="french",
            category="sauce",
            tags=["vegetarian", "basics", "quick"],
            ingredients=[
                ing("milk", "Whole milk", 500, "ml"),
                ing("flour", "Plain flour", 40, "g"),
                ing("butter", "Butter", 40, "g"),
                ing("nutmeg", "Nutmeg", 1, "pinch", note="freshly grated"),
                ing("salt", "Salt", 0.5, "tsp"),
            ],
            steps=[
                weigh("Weigh the milk", 500, keys=("milk",)),
                add(
                    "Add the rest",
                    "Add the flour, butter, nutmeg and salt",
                    keys=("flour", "butter", "nutmeg", "salt"),
                ),
                stir("Cook and thicken", 4, 7 * MIN, 90),
                add("Check the sauce", "Check the sauce coats the back of a spoon"),
                stir("Final whisk", 4, 30),
                manual("Use", "Use straight away, or press cling film on the surface."),
            ],
        ),
        recipe(
            "Foolproof Hollandaise",
            "The bowl holds the yolks at an exact, gentle heat, so the sauce thickens without "
            "ever scrambling. Made for eggs Benedict and spring asparagus.",
            servings=4,
            prep_minutes=5,
            difficulty="hard",
            cuisine="french",
            category="sauce",
            tags=["vegetarian", "gluten-free", "brunch"],
            accessories=("whisk attachment", "jug"),
            ingredients=[
                ing("butter", "Butter", 150, "g", note="cubed"),
                ing("yolks", "Egg yolks", 3, "piece"),
                ing("water", "Water", 40, "ml"),
                ing("lemon", "Lemon juice", 1, "tbsp"),
                ing("salt", "Salt", 1, "pinch"),
                ing("cayenne", "Cayenne pepper", 1, "pinch", optional=True),
            ],
            steps=[
                add("Add the butter", "Add the butter", keys=("butter",)),
                heat("Melt the butter", 70, 4 * MIN, 2),
                manual(
                    "Pour off the butter",
                    "Pour the butter into a jug and rinse the bowl with warm water.",
                ),
                add(
                    "Insert the whisk",
                    "Insert the whisk attachment, then add the yolks, water, lemon juice and salt",
                    keys=("yolks", "water", "lemon", "salt"),
                ),
                stir("Cook the yolks", 4, 5 * MIN, 70),
                add(
                    "Get the butter ready",
                    "Hold the jug of butter ready by the lid",
                    keys=("butter",),
                ),
                stir(
                    "Mount with butter",
                    3,
                    1 * MIN,
                    instruction="Pour the butter onto the lid in a thin stream while the "
                    "whisk turns.",
                ),
                manual("Serve", "Season with cayenne and serve warm.", keys=("cayenne",)),
            ],
        ),
        recipe(
            "Fresh Tomato Salsa",
            "Bright, chunky pico de gallo in seconds: a few pulses keep the tomatoes in pieces "
            "rather than purée. Best after a short rest for the lime to do its work.",
            servings=4,
            prep_minutes=5,
            difficulty="easy",
            cuisine="mexican",
            category="dip",
            tags=["vegan", "gluten-free", "quick", "no-cook"],
            ingredients=[
                ing("onion", "Red onion", 0.5, "piece"),
                ing("chilli", "Jalapeño", 1, "piece", note="deseeded for less heat"),
                ing("coriander", "Coriander", 1, "handful"),
                ing("tomatoes", "Ripe tomatoes", 400, "g", note="quartered"),
                ing("lime", "Lime", 1, "piece", note="juiced"),
                ing("salt", "Salt", 0.5, "tsp"),
            ],
            steps=[
                add(
                    "Add onion, chilli and coriander",
                    "Add the onion, chilli and coriander",
                    keys=("onion", "chilli", "coriander"),
                ),
                blend("Chop", 5, 3),
                add("Add the tomatoes", "Add the tomatoes", keys=("tomatoes",)),
                blend("Pulse", 4, 3),
                add("Add lime and salt", "Add the lime juice and salt", keys=("lime", "salt")),
                stir("Mix", 1, 10, reverse=True),
                rest("Let it mingle", 15 * MIN),
                manual("Serve", "Serve with tortilla chips or grilled fish."),
            ],
        ),
        recipe(
            "Cucumber and Dill Tzatziki",
            "Thick Greek yoghurt, squeezed cucumber, garlic and dill. The squeeze is the secret: "
            "it keeps the dip thick for days.",
            servings=6,
            prep_minutes=10,
            difficulty="easy",
            cuisine="greek",
            category="dip",
            tags=["vegetarian", "gluten-free", "quick", "summer"],
            accessories=("clean tea towel",),
            ingredients=[
                ing("garlic", "Garlic", 1, "clove"),
                ing("dill", "Dill", 1, "bunch", note="small"),
                ing("cucumber", "Cucumber", 300, "g", note="in chunks"),
                ing("yoghurt", "Greek yoghurt", 400, "g"),
                ing("olive_oil", "Olive oil", 1, "tbsp"),
                ing("lemon", "Lemon juice", 1, "tbsp"),
                ing("salt", "Salt", 0.5, "tsp"),
            ],
            steps=[
                add("Add garlic and dill", "Add the garlic and dill", keys=("garlic", "dill")),
                blend("Chop", 7, 3),
                add("Add the cucumber", "Add the cucumber", keys=("cucumber",)),
                blend("Chop the cucumber", 5, 4),
                manual(
                    "Squeeze",
                    "Tip into a tea towel and squeeze out as much liquid as you "
                    "can, then return to the bowl.",
                ),
                weigh("Weigh in the yoghurt", 400, keys=("yoghurt",)),
                add(
                    "Season",
                    "Add the oil, lemon juice and salt",
                    keys=("olive_oil", "lemon", "salt"),
                ),
                stir("Mix", 2, 20, reverse=True),
                rest("Chill", 30 * MIN),
                manual("Serve", "Serve with warm pitta or grilled lamb."),
            ],
            nutrition=nutrition(110, 6, 8, 4, 0.5, 4, 0.6),
        ),
    ]


def _breads() -> list[Json]:
    return [
        recipe(
            "Everyday White Sandwich Loaf",
            "A soft, even-crumbed loaf for toast and sandwiches. The bowl warms the water, "
            "kneads the dough and keeps it cosy for the first rise.",
            servings=12,
            prep_minutes=20,
            difficulty="medium",
            cuisine="british",
            category="bread",
            tags=["vegetarian", "baking", "basics"],
            accessories=("900 g loaf tin",),
            ingredients=[
                ing("water", "Water", 300, "ml"),
                ing("yeast", "Dried yeast", 7, "g"),
                ing("sugar", "Sugar", 1, "tsp"),
                ing("butter", "Butter", 25, "g", note="soft"),
                ing("flour", "Strong white bread flour", 500, "g"),
                ing("salt", "Salt", 10, "g"),
            ],
            steps=[
                weigh("Weigh the water", 300, keys=("water",)),
                add("Add yeast and sugar", "Add the yeast and sugar", keys=("yeast", "sugar")),
                heat("Warm", 37, 2 * MIN, 2),
                add("Add the butter", "Add the butter", keys=("butter",)),
                weigh("Weigh in the flour", 500, keys=("flour",)),
                add("Add the salt", "Add the salt", keys=("salt",)),
                knead("Knead", 3 * MIN),
                heat(
                    "First rise",
                    37,
                    50 * MIN,
                    instruction="The dough should roughly double in size.",
                ),
                knead("Knock back", 30),
                manual("Shape", "Shape the dough into a loaf and put it in the greased tin."),
                rest(
                    "Second rise",
                    40 * MIN,
                    start="on_user_confirm",
                    instruction="Cover loosely; heat the oven to 220 °C.",
                ),
                manual(
                    "Bake",
                    "Bake for 30 minutes until it sounds hollow when tapped. Cool "
                    "on a rack before slicing.",
                ),
            ],
            nutrition=nutrition(160, 5, 2, 31, 1.5, 1, 0.8),
        ),
        recipe(
            "Neapolitan-Style Pizza Dough",
            "A soft, extensible dough from '00' flour and a small amount of yeast. A slow rise "
            "gives a blistered, chewy crust even from a home oven.",
            servings=4,
            prep_minutes=15,
            difficulty="medium",
            cuisine="italian",
            category="bread",
            tags=["vegan", "baking", "family", "weekend"],
            ingredients=[
                ing("water", "Water", 320, "ml"),
                ing("yeast", "Dried yeast", 4, "g"),
                ing("flour", "'00' flour", 500, "g"),
                ing("salt", "Salt", 10, "g"),
                ing("olive_oil", "Olive oil", 1, "tbsp"),
            ],
            steps=[
                weigh("Weigh the water", 320, keys=("water",)),
                add("Add the yeast", "Add the yeast", keys=("yeast",)),
                heat("Warm", 37, 2 * MIN, 2),
                weigh("Weigh in the flour", 500, keys=("flour",)),
                add("Add salt and oil", "Add the salt and olive oil", keys=("salt", "olive_oil")),
                knead("Knead", 4 * MIN),
                rest("Rise in the bowl", 2 * HOUR),
                manual("Ball up", "Divide into four and roll each into a tight ball."),
                rest(
                    "Rest the balls",
                    30 * MIN,
                    start="on_user_confirm",
                    instruction="Heat the oven to its highest setting with a tray inside.",
                ),
                manual(
                    "Shape and bake",
                    "Stretch each ball by hand, top sparingly and bake for 6 to 8 minutes.",
                ),
            ],
        ),
        recipe(
            "Swedish Cardamom Knots",
            "Buttery, twisted buns packed with freshly ground cardamom and finished with pearl "
            "sugar. Grinding the pods in the bowl makes all the difference.",
            servings=12,
            prep_minutes=40,
            difficulty="hard",
            cuisine="swedish",
            category="baking",
            tags=["vegetarian", "baking", "fika", "weekend"],
            accessories=("baking tray", "rolling pin"),
            ingredients=[
                ing("cardamom_pods", "Green cardamom pods", 10, "g"),
                ing("milk", "Whole milk", 250, "ml", group="For the dough"),
                ing("butter", "Butter", 75, "g", group="For the dough"),
                ing("yeast", "Dried yeast", 7, "g", group="For the dough"),
                ing("sugar", "Caster sugar", 70, "g", group="For the dough"),
                ing("flour", "Plain flour", 450, "g", group="For the dough"),
                ing("salt", "Salt", 0.5, "tsp", group="For the dough"),
                ing("egg", "Egg", 1, "piece", group="For the dough"),
                ing("filling_butter", "Soft butter", 100, "g", group="For the filling"),
                ing("filling_sugar", "Light brown sugar", 80, "g", group="For the filling"),
                ing("egg_wash", "Egg, beaten", 1, "piece", group="To finish"),
                ing("pearl_sugar", "Pearl sugar", 2, "tbsp", group="To finish"),
            ],
            steps=[
                add("Add the cardamom", "Add the cardamom pods", keys=("cardamom_pods",)),
                blend("Grind", 10, 30),
                manual(
                    "Sift the cardamom",
                    "Sieve out the husks; keep a third of the powder for the filling.",
                ),
                add("Add milk and butter", "Add the milk and butter", keys=("milk", "butter")),
                heat("Warm", 37, 3 * MIN, 2),
                add("Add yeast and sugar", "Add the yeast and sugar", keys=("yeast", "sugar")),
                stir("Dissolve", 2, 10),
                weigh("Weigh in the flour", 450, keys=("flour",)),
                add(
                    "Add the rest",
                    "Add the salt, egg and two thirds of the cardamom",
                    keys=("salt", "egg"),
                ),
                knead("Knead", 4 * MIN),
                heat("Prove", 37, 45 * MIN),
                manual(
                    "Shape",
                    "Roll out to a rectangle, spread with the butter, sugar and "
                    "remaining cardamom, fold, cut into strips and twist into knots.",
                    keys=("filling_butter", "filling_sugar"),
                ),
                rest(
                    "Second rise",
                    30 * MIN,
                    start="on_user_confirm",
                    instruction="Heat the oven to 200 °C.",
                ),
                manual(
                    "Bake",
                    "Brush with egg, sprinkle with pearl sugar and bake for 10 to 12 minutes.",
                    keys=("egg_wash", "pearl_sugar"),
                ),
            ],
            nutrition=nutrition(290, 5, 13, 38, 1.5, 14, 0.3),
        ),
        recipe(
            "Banana Oat Pancakes",
            "Naturally sweet pancakes from ripe bananas and oats milled in the bowl. The batter "
            "rests while the pan heats up.",
            servings=4,
            prep_minutes=5,
            difficulty="easy",
            cuisine="american",
            category="breakfast",
            tags=["vegetarian", "family", "quick", "kids"],
            ingredients=[
                ing("oats", "Rolled oats", 100, "g"),
                ing("bananas", "Ripe bananas", 2, "piece"),
                ing("eggs", "Eggs", 2, "piece"),
                ing("milk", "Milk", 250, "ml"),
                ing("baking_powder", "Baking powder", 2, "tsp"),
                ing("cinnamon", "Ground cinnamon", 0.5, "tsp"),
                ing("salt", "Salt", 1, "pinch"),
                ing("butter", "Butter for frying", 1, "tbsp"),
            ],
            steps=[
                weigh("Weigh the oats", 100, keys=("oats",)),
                blend("Mill the oats", 10, 20),
                add(
                    "Add the rest",
                    "Add the bananas, eggs, milk, baking powder, cinnamon and salt",
                    keys=("bananas", "eggs", "milk", "baking_powder", "cinnamon", "salt"),
                ),
                blend("Make the batter", 5, 20),
                rest("Rest the batter", 10 * MIN),
                manual(
                    "Fry",
                    "Melt a little butter in a frying pan and cook small ladlefuls "
                    "for 2 minutes a side.",
                    keys=("butter",),
                ),
            ],
            nutrition=nutrition(230, 9, 8, 31, 3.5, 10, 0.5),
        ),
    ]


def _sweets_and_basics() -> list[Json]:
    return [
        recipe(
            "Vanilla Pouring Custard",
            "Proper custard made with egg yolks and a real vanilla pod, held at just the right "
            "temperature so it thickens without curdling.",
            servings=6,
            prep_minutes=5,
            difficulty="medium",
            cuisine="french",
            category="dessert",
            tags=["vegetarian", "gluten-free", "basics"],
            ingredients=[
                ing("milk", "Whole milk", 500, "ml"),
                ing("cream", "Double cream", 100, "ml"),
                ing("yolks", "Egg yolks", 5, "piece"),
                ing("sugar", "Caster sugar", 80, "g"),
                ing("vanilla", "Vanilla pod", 1, "piece", note="seeds scraped"),
                ing("cornflour", "Cornflour", 10, "g"),
            ],
            steps=[
                weigh("Weigh the milk", 500, keys=("milk",)),
                add(
                    "Add the rest",
                    "Add the cream, yolks, sugar, vanilla seeds and cornflour",
                    keys=("cream", "yolks", "sugar", "vanilla", "cornflour"),
                ),
                stir("Cook gently", 4, 8 * MIN, 80),
                add("Check the custard", "Check the custard coats the back of a spoon"),
                stir("Smooth", 4, 20),
                manual("Serve", "Serve warm, or cover the surface and chill."),
            ],
            nutrition=nutrition(210, 5, 13, 18, 0, 16, 0.1),
        ),
        recipe(
            "Thick Homemade Yoghurt",
            "Scald the milk, cool it, stir in a spoonful of live yoghurt and let the bowl keep "
            "it at a steady 40 °C overnight. Milk powder makes it extra thick.",
            servings=8,
            prep_minutes=5,
            difficulty="easy",
            cuisine="greek",
            category="breakfast",
            tags=["vegetarian", "gluten-free", "basics", "overnight"],
            accessories=("jars",),
            ingredients=[
                ing("milk", "Whole milk", 1000, "ml"),
                ing("milk_powder", "Skimmed milk powder", 30, "g", optional=True),
                ing("starter", "Live natural yoghurt", 100, "g", note="at room temperature"),
            ],
            steps=[
                weigh("Weigh the milk", 1000, keys=("milk",)),
                add("Add the milk powder", "Add the milk powder", keys=("milk_powder",)),
                heat("Scald the milk", 90, 15 * MIN, 2),
                rest("Cool to 40 °C", 45 * MIN, instruction="Leave the lid on."),
                add("Add the starter", "Add the live yoghurt", keys=("starter",)),
                stir("Mix in the starter", 3, 10),
                heat("Incubate", 40, 8 * HOUR),
                manual("Chill", "Spoon into jars and refrigerate for at least 4 hours."),
            ],
            nutrition=nutrition(90, 6, 4, 7, 0, 7, 0.2),
        ),
        recipe(
            "Zesty Lemon Curd",
            "Sharp, glossy lemon curd that sets softly in the jar. Lovely on scones, swirled "
            "through yoghurt or spooned into tart cases.",
            servings=10,
            prep_minutes=10,
            difficulty="medium",
            cuisine="british",
            category="preserve",
            tags=["vegetarian", "gluten-free", "gift"],
            accessories=("sterilised jars",),
            ingredients=[
                ing("sugar", "Caster sugar", 200, "g"),
                ing("zest", "Lemon zest", 3, "piece", note="from unwaxed lemons, in strips"),
                ing("juice", "Lemon juice", 150, "ml"),
                ing("butter", "Butter", 100, "g", note="cubed"),
                ing("eggs", "Eggs", 3, "piece"),
                ing("yolk", "Egg yolk", 1, "piece"),
            ],
            steps=[
                weigh("Weigh the sugar", 200, keys=("sugar",)),
                add("Add the zest", "Add the lemon zest", keys=("zest",)),
                blend("Make lemon sugar", 10, 10),
                add(
                    "Add the rest",
                    "Add the lemon juice, butter, eggs and yolk",
                    keys=("juice", "butter", "eggs", "yolk"),
                ),
                stir("Cook until thick", 4, 12 * MIN, 80),
                add("Check the curd", "Check the curd coats the spoon thickly"),
                manual("Pot", "Pour into warm sterilised jars, seal and cool."),
            ],
        ),
        recipe(
            "Chocolate Hazelnut Spread",
            "Toasted hazelnuts ground to a butter, then blended with dark chocolate and cocoa. "
            "Less sugar than the shop-bought kind and far more hazelnut.",
            servings=16,
            prep_minutes=5,
            difficulty="medium",
            cuisine="italian",
            category="spread",
            tags=["vegetarian", "gluten-free", "kids", "gift"],
            ingredients=[
                ing("hazelnuts", "Blanched hazelnuts", 200, "g"),
                ing("sugar", "Icing sugar", 120, "g"),
                ing("chocolate", "Dark chocolate", 100, "g", note="in pieces"),
                ing("cocoa", "Cocoa powder", 30, "g"),
                ing("oil", "Sunflower oil", 40, "ml"),
                ing("milk_powder", "Milk powder", 30, "g"),
                ing("salt", "Salt", 1, "pinch"),
            ],
            steps=[
                weigh("Weigh the hazelnuts", 200, keys=("hazelnuts",)),
                stir("Toast", 1, 8 * MIN, 120, reverse=True),
                add("Add the sugar", "Add the sugar", keys=("sugar",)),
                blend(
                    "Grind to a butter",
                    10,
                    60,
                    instruction="Scrape down halfway; the nuts turn to a paste.",
                ),
                add("Add the chocolate", "Add the chocolate", keys=("chocolate",)),
                blend("Chop the chocolate", 9, 15),
                add(
                    "Add the rest",
                    "Add the cocoa, oil, milk powder and salt",
                    keys=("cocoa", "oil", "milk_powder", "salt"),
                ),
                blend("Blend warm", 5, 2 * MIN, 50),
                manual("Jar", "Pour into a clean jar; it firms up as it cools."),
            ],
            nutrition=nutrition(190, 4, 14, 13, 2.5, 10, 0.1),
        ),
        recipe(
            "Quick Strawberry Jam",
            "A small batch of bright strawberry jam in half an hour. Jam sugar with added pectin "
            "sets it reliably; the reverse stir keeps some fruit whole.",
            servings=24,
            prep_minutes=10,
            difficulty="medium",
            cuisine="french",
            category="preserve",
            tags=["vegan", "gluten-free", "summer", "gift"],
            accessories=("splash guard", "sterilised jars"),
            ingredients=[
                ing("strawberries", "Strawberries", 600, "g", note="hulled"),
                ing("sugar", "Jam sugar", 400, "g"),
                ing("lemon", "Lemon", 1, "piece", note="juiced"),
            ],
            steps=[
                weigh("Weigh the strawberries", 600, keys=("strawberries",)),
                blend("Crush", 4, 4),
                weigh("Weigh in the sugar", 400, keys=("sugar",)),
                add(
                    "Add the lemon",
                    "Add the lemon juice and put the splash guard on the lid",
                    keys=("lemon",),
                ),
                stir("Boil", 1, 25 * MIN, 105, reverse=True),
                add(
                    "Test the set",
                    "Put a little jam on a cold saucer: it should wrinkle when pushed",
                ),
                manual("Pot", "Ladle into hot sterilised jars and seal at once."),
            ],
        ),
        recipe(
            "Thick Spanish Hot Chocolate",
            "Chocolate a la taza: dark, spoon-coating drinking chocolate thickened with a "
            "little cornflour. Made for dunking churros or buttered toast.",
            servings=4,
            prep_minutes=2,
            difficulty="easy",
            cuisine="spanish",
            category="drink",
            tags=["vegetarian", "gluten-free", "quick", "winter"],
            ingredients=[
                ing("chocolate", "Dark chocolate", 100, "g", note="in pieces"),
                ing("milk", "Whole milk", 750, "ml"),
                ing("cornflour", "Cornflour", 15, "g"),
                ing("sugar", "Sugar", 30, "g"),
                ing("cinnamon", "Ground cinnamon", 1, "pinch"),
            ],
            steps=[
                add("Add the chocolate", "Add the chocolate", keys=("chocolate",)),
                blend("Grate", 9, 10),
                weigh("Weigh in the milk", 750, keys=("milk",)),
                add(
                    "Add the rest",
                    "Add the cornflour, sugar and cinnamon",
                    keys=("cornflour", "sugar", "cinnamon"),
                ),
                stir("Heat and thicken", 3, 8 * MIN, 90),
                manual("Serve", "Pour into small cups and serve at once."),
            ],
            nutrition=nutrition(300, 8, 14, 35, 2, 28, 0.2),
        ),
        recipe(
            "Mango Lassi with Cardamom",
            "Cold, creamy and fragrant: ripe mango blended with yoghurt, a little milk and a "
            "pinch of cardamom, over crushed ice.",
            servings=4,
            prep_minutes=5,
            difficulty="easy",
            cuisine="indian",
            category="drink",
            tags=["vegetarian", "gluten-free", "quick", "summer"],
            ingredients=[
                ing("ice", "Ice cubes", 8, "piece"),
                ing("mango", "Ripe mango flesh", 400, "g"),
                ing("yoghurt", "Natural yoghurt", 400, "g"),
                ing("milk", "Cold milk", 200, "ml"),
                ing("sugar", "Sugar", 2, "tbsp", optional=True),
                ing("cardamom", "Ground cardamom", 1, "pinch"),
            ],
            steps=[
                add("Add the ice", "Add the ice", keys=("ice",)),
                blend("Crush the ice", 8, 10),
                weigh("Weigh in the mango", 400, keys=("mango",)),
                add(
                    "Add the rest",
                    "Add the yoghurt, milk, sugar and cardamom",
                    keys=("yoghurt", "milk", "sugar", "cardamom"),
                ),
                blend("Blend", 10, 40),
                manual("Serve", "Pour into tall glasses."),
            ],
        ),
        recipe(
            "Coconut Rice Pudding with Mango",
            "Creamy, dairy-free rice pudding simmered in coconut and oat milk, finished with "
            "lime zest and served with sliced mango.",
            servings=6,
            prep_minutes=5,
            difficulty="easy",
            cuisine="thai",
            category="dessert",
            tags=["vegan", "gluten-free", "comfort"],
            ingredients=[
                ing("rice", "Pudding rice", 120, "g"),
                ing("coconut_milk", "Coconut milk", 400, "ml"),
                ing("oat_milk", "Oat milk", 400, "ml"),
                ing("sugar", "Sugar", 60, "g"),
                ing("salt", "Salt", 1, "pinch"),
                ing("lime", "Lime zest", 1, "piece"),
                ing("mango", "Mango", 1, "piece", note="sliced, to serve"),
            ],
            steps=[
                weigh("Weigh the rice", 120, keys=("rice",)),
                add(
                    "Add the liquids",
                    "Add the coconut milk, oat milk, sugar and salt",
                    keys=("coconut_milk", "oat_milk", "sugar", "salt"),
                ),
                stir("Simmer", 1, 35 * MIN, 95, reverse=True),
                add("Add the zest", "Add the lime zest", keys=("lime",)),
                rest("Thicken", 10 * MIN),
                manual("Serve", "Serve warm or cold with the mango.", keys=("mango",)),
            ],
            nutrition=nutrition(280, 4, 13, 37, 1.5, 16, 0.2),
        ),
        recipe(
            "Creamy Mashed Potatoes",
            "Potatoes cooked in milk, then whipped with butter: no draining, no lumps, and all "
            "the flavour stays in the mash.",
            servings=4,
            prep_minutes=10,
            difficulty="easy",
            cuisine="british",
            category="side",
            tags=["vegetarian", "gluten-free", "comfort", "family"],
            accessories=("whisk attachment",),
            ingredients=[
                ing("potatoes", "Floury potatoes", 800, "g", note="peeled, in 3 cm pieces"),
                ing("milk", "Whole milk", 250, "ml"),
                ing("salt", "Salt", 1, "tsp"),
                ing("butter", "Butter", 50, "g"),
                ing("nutmeg", "Nutmeg", 1, "pinch"),
            ],
            steps=[
                add("Insert the whisk", "Insert the whisk attachment"),
                weigh("Weigh the potatoes", 800, keys=("potatoes",)),
                add("Add milk and salt", "Add the milk and salt", keys=("milk", "salt")),
                stir("Cook", 1, 25 * MIN, 98, reverse=True),
                add("Add the butter", "Add the butter and nutmeg", keys=("butter", "nutmeg")),
                stir("Whip", 3, 20),
                manual("Serve", "Check the seasoning and serve hot."),
            ],
            nutrition=nutrition(260, 6, 12, 33, 3, 4, 1.3),
        ),
        recipe(
            "Soft Parmesan Polenta",
            "Quick-cook polenta enriched with butter and Parmesan: a soft, spoonable side for "
            "braises, mushrooms or sausages.",
            servings=4,
            prep_minutes=2,
            difficulty="easy",
            cuisine="italian",
            category="side",
            tags=["vegetarian", "gluten-free", "quick"],
            ingredients=[
                ing("water", "Water", 800, "ml"),
                ing("milk", "Milk", 200, "ml"),
                ing("salt", "Salt", 1, "tsp"),
                ing("polenta", "Quick-cook polenta", 200, "g"),
                ing("butter", "Butter", 30, "g"),
                ing("parmesan", "Parmesan", 50, "g", note="grated"),
            ],
            steps=[
                weigh("Weigh the water", 800, keys=("water",)),
                add("Add milk and salt", "Add the milk and salt", keys=("milk", "salt")),
                heat("Bring to the boil", 100, 8 * MIN, 1),
                add(
                    "Add the polenta",
                    "Pour the polenta through the lid while the blade turns",
                    keys=("polenta",),
                ),
                stir("Cook", 2, 10 * MIN, 95, reverse=True, start="on_temperature"),
                add(
                    "Add butter and cheese",
                    "Add the butter and Parmesan",
                    keys=("butter", "parmesan"),
                ),
                stir("Beat in", 2, 30, reverse=True),
                manual("Serve", "Serve straight away; it firms as it cools."),
            ],
        ),
        recipe(
            "Butternut Squash Purée for Little Ones",
            "A smooth first-foods purée: squash steamed in the basket to keep its sweetness, "
            "then blended with a little of the cooking water. Freezes in ice-cube trays.",
            servings=8,
            prep_minutes=10,
            difficulty="easy",
            cuisine=None,
            category="baby",
            tags=["vegan", "gluten-free", "baby-food", "freezer-friendly"],
            accessories=("simmering basket",),
            ingredients=[
                ing("water", "Water", 500, "ml"),
                ing("squash", "Butternut squash", 500, "g", note="peeled, in 2 cm cubes"),
            ],
            steps=[
                weigh("Weigh the water", 500, keys=("water",)),
                add(
                    "Add the squash",
                    "Put the squash in the simmering basket and insert it",
                    keys=("squash",),
                ),
                steam("Steam", 20 * MIN),
                manual(
                    "Drain",
                    "Lift out the basket, pour away all but 100 ml of the water "
                    "and tip the squash back into the bowl.",
                ),
                blend("Purée", 6, 60),
                rest("Cool", 15 * MIN),
                manual(
                    "Portion",
                    "Spoon into ice-cube trays and freeze, or keep for 2 days in the fridge.",
                ),
            ],
        ),
        recipe(
            "Fluffy Steamed Jasmine Rice",
            "Perfect rice every time: the grains steam in the basket above boiling water and "
            "never stick to the bottom.",
            servings=4,
            prep_minutes=2,
            difficulty="easy",
            cuisine="thai",
            category="side",
            tags=["vegan", "gluten-free", "basics"],
            accessories=("simmering basket",),
            ingredients=[
                ing("water", "Water", 1000, "ml"),
                ing("rice", "Jasmine rice", 300, "g"),
                ing("salt", "Salt", 1, "tsp"),
            ],
            steps=[
                weigh("Weigh the water", 1000, keys=("water",)),
                add("Add the salt", "Add the salt", keys=("salt",)),
                add("Insert the basket", "Insert the simmering basket"),
                weigh("Weigh the rice into the basket", 300, keys=("rice",)),
                manual(
                    "Rinse",
                    "Rinse the rice in the basket under the tap until the water "
                    "runs clear, then put it back.",
                ),
                heat("Cook", 100, 20 * MIN, 4),
                rest("Rest", 3 * MIN),
                manual("Serve", "Fluff with a fork and serve."),
            ],
        ),
    ]


def demo_recipes() -> list[Json]:
    """The demo set: fresh dicts on every call (callers may change them)."""
    return [*_soups(), *_mains(), *_sauces_and_dips(), *_breads(), *_sweets_and_basics()]
