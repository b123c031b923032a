#!/usr/bin/env node
// Entry point installed as the `acvpn` command; the compiled CLI lives in dist/.
import '../dist/cli/main.js';
