"""Every spelling of the tick follows its one definition, ticklake.core.tick_fields.

Adding a field there makes each test below name the copy still to change: the msgspec
struct, ingest's column builders, the producer's simulator, the query API's model, the
Redis decoder's types. (The lake's Arrow fields are derived, and checked here too.)
"""

from __future__ import annotations

import dataclasses
import types
import typing

import msgspec
import pyarrow as pa

from ticklake.core import hot_cache, lake_layout, tick
from ticklake.core.tick_fields import ROW_FIELDS, SOURCE_FIELDS, TICK_FIELDS

TICK_NAMES = [f.name for f in TICK_FIELDS]
ROW_NAMES = [f.name for f in ROW_FIELDS]


def _python_type(annotation: object) -> tuple[type, bool]:
    """(the type, whether ``None`` is allowed) of an annotation such as ``float | None``."""
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        others = [a for a in args if a is not type(None)]
        assert len(others) == 1, annotation
        return others[0], True
    assert isinstance(annotation, type), annotation
    return annotation, False


def test_the_msgspec_tick_has_the_fields_types_and_optionality() -> None:
    fields = [f for f in msgspec.structs.fields(tick.Tick) if f.name != "v"]
    assert [f.name for f in fields] == TICK_NAMES
    for declared, field in zip(TICK_FIELDS, fields, strict=True):
        kind, nullable = _python_type(field.type)
        assert kind is declared.python_type, field.name
        assert nullable is not declared.required, field.name
        assert field.required is declared.required, field.name


def test_the_decoder_accepts_every_field_under_its_own_name() -> None:
    loose = {f.name for f in msgspec.structs.fields(tick._LooseTick)}
    assert set(TICK_NAMES) <= loose


def test_the_lake_columns_are_the_fields_in_order_with_their_arrow_types() -> None:
    base = pa.schema(list(lake_layout.TICK_BASE_FIELDS + lake_layout.SOURCE_FIELDS))
    assert base.names == ROW_NAMES
    for declared in ROW_FIELDS:
        column = base.field(declared.name)
        assert column.type == getattr(pa, declared.kind)()
        assert column.nullable is not declared.required


def test_ingest_builds_exactly_the_lake_columns() -> None:
    from ticklake.ingest import normalise
    from ticklake.ingest.features import FEATURE_FIELDS, FeatureParams
    from ticklake.ingest.partition import TICK_FILE_SCHEMA, PartitionProcessor

    flags = [f.name for f in lake_layout.FLAG_FIELDS]  # lake-only: what ingest found
    features = [f.name for f in FEATURE_FIELDS]
    assert TICK_FILE_SCHEMA.names == ROW_NAMES + flags + features
    # the normaliser keeps a column per tick field (symbol as its code)
    kept = {f.name for f in dataclasses.fields(normalise.TickColumns)}
    assert set(TICK_NAMES) - {"symbol"} <= kept

    class Record:
        topic, partition, offset, key, headers = "t", 0, 0, b"A", ()
        value = tick.encode_tick(
            tick.Tick(
                symbol="A", ts_ns=1_735_828_200 * 10**9, price=1.0, size=1.0, exchange="X",
                seq=1, bid=0.9, ask=1.1, bid_size=1.0, ask_size=2.0,
            )
        )  # fmt: skip

    batch = PartitionProcessor(0, FeatureParams(), 16).process([Record()], 1)
    assert list(batch.columns) == ROW_NAMES + features
    assert list(batch.flags) == flags
    assert batch.rows().schema.names == TICK_FILE_SCHEMA.names


def test_the_producers_simulator_columns_are_the_tick_fields() -> None:
    from ticklake.producer.simulator import MarketSimulator, TickColumns, build_market

    kept = {f.name for f in dataclasses.fields(TickColumns)}
    assert set(TICK_NAMES) - {"symbol", "exchange"} <= kept
    window = MarketSimulator(build_market(["A", "B"]), seed=1).generate(
        5, 1_735_828_200 * 10**9, 1_735_828_201 * 10**9
    )
    assert window.to_arrow().schema == pa.schema(list(lake_layout.TICK_BASE_FIELDS))
    assert {t.symbol for t in window.to_ticks()} <= {"A", "B"}


def test_the_query_apis_tick_model_documents_every_row_column() -> None:
    from ticklake.query.api.models import Tick as TickModel

    model_fields = TickModel.model_fields
    assert set(ROW_NAMES) <= set(model_fields)
    for declared in ROW_FIELDS:
        kind, _ = _python_type(model_fields[declared.name].annotation)
        assert kind is declared.python_type, declared.name


def test_the_redis_decoders_integer_columns_are_the_integer_columns() -> None:
    from ticklake.ingest.features import FEATURES

    int_features = {f.name for f in FEATURES if pa.types.is_integer(f.type)}
    assert hot_cache.INT_FEATURES == int_features
    assert {f.name for f in SOURCE_FIELDS if f.python_type is int} <= hot_cache.INT_FIELDS
    float_features = {f.name for f in FEATURES if pa.types.is_floating(f.type)}
    assert not float_features & (hot_cache.INT_FIELDS | hot_cache.STR_FIELDS)
