prepare = 42


async def run(ctx):
    pass
