from lightsnn.cli import main

raise SystemExit(main())
