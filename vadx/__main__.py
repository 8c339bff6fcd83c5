from vadx.cli import main

raise SystemExit(main())
