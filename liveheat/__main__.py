from liveheat.cli import main

raise SystemExit(main())
