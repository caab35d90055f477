# kws-exec's warm start for python3: run with `python3 -I -S -u -c <this> main.py` ahead of the
# job, it waits for the job's source on descriptor 3, writes it to main.py (which must not
# exist) and runs it as `python3 -I -S -u main.py` would: as __main__, with the same globals,
# __file__, sys.argv and sys.path, the same traceback and exit code for an uncaught exception
# or a syntax error. What differs: one frame of this loader is under the program's (seen only
# by code that walks the stack), and sys.orig_argv names this loader.
import sys
def _kws_main(sys=sys):
    name = sys.argv[1]
    # The compiler's first use costs milliseconds; pay it before the job comes.
    compile(b"pass\n", "<kws>", "exec", dont_inherit=True)
    with open(3, "rb") as f:
        source = f.read()
    with open(name, "xb") as f:
        f.write(source)
    path = sys.modules["posix"].getcwd().rstrip("/") + "/" + name
    main = sys.modules["__main__"]
    main.__dict__.clear()
    main.__dict__.update(
        __name__="__main__", __doc__=None, __package__=None, __spec__=None,
        __file__=path, __cached__=None, __annotations__={},
        __builtins__=sys.modules["builtins"],
        __loader__=sys.modules["_frozen_importlib_external"].SourceFileLoader("__main__", path),
    )
    sys.argv[:] = [name]
    try:
        exec(compile(source, path, "exec", dont_inherit=True), main.__dict__)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as e:
        e.__traceback__ = e.__traceback__.tb_next
        sys.excepthook(type(e), e, e.__traceback__)
        sys.exit(1)
_kws_main()
