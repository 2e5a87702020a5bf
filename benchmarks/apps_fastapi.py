"""workloads.py's FastAPI app: a JSON POST validated into a Pydantic model, another answered.

Kept apart from apps.py so that no other benchmark's server imports FastAPI
(and without ``from __future__ import annotations``: FastAPI reads the
annotations to know the body's model).
"""

from fastapi import FastAPI
from pydantic import BaseModel


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


class Priced(BaseModel):
    name: str
    price: float
    with_tax: float
    tags: list[str]


app = FastAPI()


@app.post("/items")
async def create(item: Item) -> Priced:
    return Priced(name=item.name, price=item.price, with_tax=round(item.price * 1.2, 2),
                  tags=item.tags)  # fmt: skip
