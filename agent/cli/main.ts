#!/usr/bin/env node
import { entry } from "./cli.ts";

await entry();
