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

/** Identity-labelled sets beyond FRLL, in the order they are drawn on: folder → two photos. */
const MORE_PEOPLE: Array<{ set: string; photos: (files: string[]) => [string, string] | undefined }> = [
  // CelebA: in-the-wild photos, six per person; the first two in name order.
  { set: 'celeba', photos: (files) => (files.length >= 2 ? [files[0]!, files[1]!] : undefined) },
  // ORL: 92×112 grey, ten per person; 1.png is frontal, 2.png a slight turn.
  {
    set: 'orl',
    photos: (files) => (files.includes('1.png') && files.includes('2.png') ? ['1.png', '2.png'] : undefined),
  },
];

/**
 * Up to `limit` people: FRLL first (as `frllPeople`), then CelebA and ORL people from
 * ../shared/data, each with an enrolment photo and a different probe photo.
 */
export function labelledPeople(limit: number): Person[] {
  const people = frllPeople(limit);
  for (const { set, photos } of MORE_PEOPLE) {
    const root = sharedData('faces', set);
    if (!existsSync(root)) continue;
    for (const folder of readdirSync(root).sort()) {
      if (people.length >= limit) return people;
      const files = readdirSync(path.join(root, folder)).sort();
      const pair = photos(files);
      if (pair === undefined) continue;
      people.push({
        subjectId: `${set}-${folder}`,
        enrolImage: readImage(path.join(root, folder, pair[0])),
        probeImage: readImage(path.join(root, folder, pair[1])),
      });
    }
  }
  return people;
}
