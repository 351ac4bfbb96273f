async def main(ctx):
    pass
