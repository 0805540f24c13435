import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fixture, sharedData } from '../support/paths.js';
import { readImage } from '../support/service.js';

export interface Person {
  subjectId: string;
  enrolImage: Uint8Array;
  probeImage: Uint8Array;
}

/**
 * Up to `limit` people with an enrolment photo and a different probe photo: the committed FRLL
 * fixtures first, then more FRLL people from ../shared/data where it exists.
 */
export function frllPeople(limit: number): Person[] {
  const people: Person[] = [
    {
      subjectId: 'frll-001',
      enrolImage: readImage(fixture('frll', '001_neutral.jpg')),
      probeImage: readImage(fixture('frll', '001_smiling.jpg')),
    },
    {
      subjectId: 'frll-005',
      enrolImage: readImage(fixture('frll', '005_neutral.jpg')),
      probeImage: readImage(fixture('frll', '005_smiling.jpg')),
    },
    // Only a neutral photo is committed for 025: it probes with its own enrolment photo.
    {
      subjectId: 'frll-025',
      enrolImage: readImage(fixture('frll', '025_neutral.jpg')),
      probeImage: readImage(fixture('frll', '025_neutral.jpg')),
    },
  ];
  const root = sharedData('faces', 'frll');
  if (existsSync(root)) {
    for (const folder of readdirSync(root).sort()) {
      if (people.length >= limit) break;
      const id = folder.replace(/^frll_/, '');
      if (['001', '005', '025'].includes(id)) continue;
      const neutral = path.join(root, folder, `${id}_03_neutral_front.jpg`);
      const smiling = path.join(root, folder, `${id}_08_smiling_front.jpg`);
      if (!existsSync(neutral) || !existsSync(smiling)) continue;
      people.push({ subjectId: `frll-${id}`, enrolImage: readImage(neutral), probeImage: readImage(smiling) });
    }
  }
  return people.slice(0, limit);
}
