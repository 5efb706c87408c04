// fast-check's seed for the whole test run (loaded with --import by `npm test`, and by the
// fuzz worker). A CI-sized run uses one fixed seed, so a build passes or fails on the code
// and not on what the generators drew that day; the soak run (JAILYARD_SOAK=1) keeps
// fast-check's random seed to find new inputs. JAILYARD_FUZZ_SEED=N reruns one draw: every
// failure prints the seed it ran with. An input a soak run finds goes to
// test/fuzz/regressions.test.ts.
import fc from 'fast-check';

const CI_SEED = 20_261_202;

function chosenSeed(): number | undefined {
  const given = process.env.JAILYARD_FUZZ_SEED;
  if (given !== undefined && given !== '') {
    const n = Number(given);
    if (!Number.isSafeInteger(n)) throw new Error(`JAILYARD_FUZZ_SEED: not an integer: ${JSON.stringify(given)}`);
    return n;
  }
  return process.env.JAILYARD_SOAK === '1' ? undefined : CI_SEED;
}

const seed = chosenSeed();
if (seed !== undefined) fc.configureGlobal({ ...fc.readConfigureGlobal(), seed });
