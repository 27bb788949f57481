from musicgen.cli import main

raise SystemExit(main())
