import does_not_exist_quarry  # noqa: F401


async def run(ctx):
    pass
